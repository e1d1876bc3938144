# Convenience wrappers; the scripts work without make (fresh machines may not have it).
.PHONY: dev test build bench
dev:
	bash scripts/dev.sh
test:
	bash scripts/test.sh
build:
	bash scripts/setup.sh && bash scripts/build-pwa.sh && bash scripts/build-edge.sh
bench:
	bash bench/run.sh
