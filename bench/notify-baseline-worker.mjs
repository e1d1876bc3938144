// The baseline of bench/notify.mjs: a plain JavaScript Worker with the same Queue settings as
// edgeflags' push queue. POST /enqueue {n, url} queues n messages; the consumer POSTs each
// to `${url}/${i}` (the whole batch at once, as edgeflags' consumer does). MODE adds, per
// message, the work edgeflags does besides the POST, to show where its time goes:
// `crypto` = the WebCrypto calls of one RFC 8291 encryption and one VAPID ES256 signature;
// `do` = two calls to a SQLite Durable Object (claim and record, 16 shards), each writing a
// row; `doread` = the same two calls, reading only.
const te = new TextEncoder();

export class Store {
  constructor(state) {
    this.sql = state.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS d (id TEXT PRIMARY KEY, state TEXT NOT NULL)');
  }
  async fetch(req) {
    const { id, state, read } = await req.json();
    if (read) return Response.json({ rows: this.sql.exec('SELECT state FROM d WHERE id = ?', id).toArray() });
    this.sql.exec('INSERT INTO d VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state', id, state);
    return Response.json({ ok: true });
  }
}

let signingKey;
async function cryptoWork(payload) {
  const s = crypto.subtle;
  const ecdh = { name: 'ECDH', namedCurve: 'P-256' };
  const recipient = await s.generateKey(ecdh, true, ['deriveBits']); // stands for the subscriber's key
  const ephemeral = await s.generateKey(ecdh, true, ['deriveBits']);
  await s.exportKey('raw', ephemeral.publicKey);
  const peer = await s.importKey('raw', await s.exportKey('raw', recipient.publicKey), ecdh, false, []);
  const shared = await s.deriveBits({ name: 'ECDH', public: peer }, ephemeral.privateKey, 256);
  const hkdf = await s.importKey('raw', shared, 'HKDF', false, ['deriveBits']);
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const cek = await s.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info: te.encode('cek') }, hkdf, 128);
  const nonce = await s.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info: te.encode('nonce') }, hkdf, 96);
  const aes = await s.importKey('raw', cek, 'AES-GCM', false, ['encrypt']);
  const body = await s.encrypt({ name: 'AES-GCM', iv: nonce }, aes, payload);
  signingKey ??= (await s.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])).privateKey;
  await s.sign({ name: 'ECDSA', hash: 'SHA-256' }, signingKey, te.encode('header.claims'));
  return body;
}

export default {
  async fetch(req, env) {
    const { n, url } = await req.json();
    for (let i = 0; i < n; i += 100) {
      const chunk = Array.from({ length: Math.min(100, n - i) }, (_, k) => ({ body: { url: `${url}/${i + k}`, i: i + k } }));
      await env.QUEUE.sendBatch(chunk);
    }
    return Response.json({ queued: n });
  },
  async queue(batch, env) {
    const mode = env.MODE ?? 'post';
    await Promise.all(batch.messages.map(async (m) => {
      const store = mode.includes('do') ? env.STORE.get(env.STORE.idFromName(`s${m.body.i % 16}`)) : null;
      const read = mode.includes('doread');
      const call = (state) => store.fetch('http://store/', { method: 'POST', body: JSON.stringify({ id: String(m.body.i), state, read }) });
      if (store) await call('claimed');
      const payload = te.encode(JSON.stringify({ title: 'bench', body: 'b', i: m.body.i }));
      const body = mode.includes('crypto') ? await cryptoWork(payload) : payload;
      const res = await fetch(m.body.url, { method: 'POST', body, headers: { ttl: '60', 'content-encoding': 'aes128gcm' } });
      await res.arrayBuffer();
      if (store) await call('delivered');
      m.ack();
    }));
  },
};
