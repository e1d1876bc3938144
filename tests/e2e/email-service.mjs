// A local HTTP e-mail API on 127.0.0.1 playing the e-mail provider's part: it records every
// POST (headers and JSON body) and answers what the test scripted for the recipient
// (default 202; e.g. [500, 202], { status: 429, headers: { 'retry-after': '1' } }, or 'hang':
// never answer).
import { once } from 'node:events';
import { createServer } from 'node:http';

export async function startEmailService({ path = '/send', to = (body) => body.to } = {}) {
  const requests = [];
  const scripts = new Map();
  const hung = new Set();
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body = null;
      try {
        body = JSON.parse(text);
      } catch {
        // recorded as null: the test sees a body that is not JSON
      }
      const recipient = body ? to(body) : undefined;
      if (req.url !== path || req.method !== 'POST') {
        // Not the API: recorded with the 404 it gets, and no scripted answer is used up.
        requests.push({ method: req.method, url: req.url, headers: req.headers, text, body, to: recipient, status: 404 });
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"error":"not found"}');
        return;
      }
      const queue = scripts.get(recipient) ?? [];
      const step = queue.length ? queue.shift() : 202;
      if (step === 'hang') {
        // Never answers (until close): the caller must give up on its own.
        requests.push({ method: req.method, url: req.url, headers: req.headers, text, body, to: recipient, status: 'hang' });
        hung.add(res);
        return;
      }
      const { status, headers = {} } = typeof step === 'number' ? { status: step } : step;
      requests.push({ method: req.method, url: req.url, headers: req.headers, text, body, to: recipient, status });
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify({ id: `msg-${requests.length}` }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}${path}`,
    requests,
    /** Scripts the next answers for a recipient address. */
    script(address, steps) {
      scripts.set(address, [...steps]);
    },
    /** The requests for notification `id` (by the `Idempotency-Key` prefix), optionally only those answered `status`. */
    for(id, status) {
      return requests.filter((r) => (r.headers['idempotency-key'] ?? '').startsWith(`${id}-`) && (status === undefined || r.status === status));
    },
    close: () => new Promise((resolve) => {
      for (const res of hung) res.destroy();
      server.close(resolve);
      server.closeAllConnections();
    }),
  };
}
