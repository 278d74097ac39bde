// Checks, before it is measured, that a peer set-up does the job pforte does in the
// benchmark's scenarios, so that the report compares like with like:
//   node bench/peer/check.mjs ISSUER jwt|opaque
// - every access token it answers (client_credentials, code exchange, refresh) is of the
//   given kind: with `jwt`, an ES256 `at+jwt` (RFC 9068); with `opaque`, not a JWT;
// - a login (code flow with PKCE through the development login page) yields a refresh token;
// - refreshing rotates it: the answer carries a new refresh token and an ID token;
// - presenting the rotated-out token again is refused, and then the newest token of that
//   grant is refused too (the grant is revoked, as pforte revokes the whole family).
// Exits 1 with the reason on the first failed check.
import { createHash, randomBytes } from 'node:crypto';

const [issuer, format] = process.argv.slice(2);
const REDIRECT = 'http://127.0.0.1:18099/cb';
const fail = (why) => {
  console.error(why);
  process.exit(1);
};
if (!issuer || !['jwt', 'opaque'].includes(format)) {
  fail('usage: check.mjs ISSUER jwt|opaque');
}
const form = (fields) => new URLSearchParams(fields).toString();
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

async function token(fields, headers = {}) {
  const r = await fetch(`${issuer}/token`, { method: 'POST', headers: { ...FORM, ...headers }, body: form(fields) });
  return { status: r.status, body: await r.json().catch(() => ({})) };
}

// The kind of an access token the peer answered (`what` names the request).
function checkKind(what, at) {
  if (!at) fail(`${what}: no access token`);
  if (format === 'opaque') {
    if (at.includes('.')) fail(`${what}: not an opaque access token: ${at.slice(0, 40)}`);
    return;
  }
  let header = {};
  try { header = JSON.parse(Buffer.from(at.split('.')[0], 'base64url').toString()); } catch { /* below */ }
  if (at.split('.').length !== 3 || header.typ !== 'at+jwt' || header.alg !== 'ES256') {
    fail(`${what}: not an ES256 at+jwt access token: ${at.slice(0, 40)}`);
  }
}

const cc = await token({ grant_type: 'client_credentials' }, {
  authorization: `Basic ${Buffer.from('bench-cc:bench-secret').toString('base64')}`,
});
if (cc.status !== 200) fail(`client_credentials: ${cc.status} ${JSON.stringify(cc.body)}`);
checkKind('client_credentials', cc.body.access_token);

// A login, with cookies kept by name (one host, loopback HTTP).
const jar = new Map();
const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
async function go(url, init = {}) {
  const r = await fetch(new URL(url, issuer), { ...init, redirect: 'manual', headers: { ...init.headers, cookie: cookieHeader() } });
  for (const c of r.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const at = pair.indexOf('=');
    jar.set(pair.slice(0, at), pair.slice(at + 1));
  }
  return r;
}
const verifier = randomBytes(32).toString('base64url');
const challenge = createHash('sha256').update(verifier).digest('base64url');
let r = await go(`/auth?${form({
  client_id: 'bench-app', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid email profile',
  state: 's', nonce: 'n', code_challenge: challenge, code_challenge_method: 'S256',
})}`);
let code;
for (let hop = 0; hop < 10 && !code; hop += 1) {
  if (r.status >= 300 && r.status < 400) {
    const next = new URL(r.headers.get('location'), issuer);
    if (next.href.startsWith(REDIRECT)) {
      code = next.searchParams.get('code');
      break;
    }
    r = await go(next.href);
    continue;
  }
  const html = await r.text();
  const action = html.match(/<form[^>]*action="([^"]+)"/)?.[1];
  if (r.status !== 200 || !action) fail(`login: unexpected answer ${r.status} at hop ${hop}`);
  const fields = Object.fromEntries([...html.matchAll(/<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)].map((m) => [m[1], m[2]]));
  r = await go(action, { method: 'POST', headers: FORM, body: form({ ...fields, login: 'bench', password: 'bench' }) });
}
if (!code) fail('login: no code reached the redirect URI');
const issued = await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, client_id: 'bench-app', code_verifier: verifier });
const first = issued.body.refresh_token;
if (issued.status !== 200 || !first) fail(`code exchange: ${issued.status} ${JSON.stringify(issued.body)}`);
checkKind('code exchange', issued.body.access_token);

// Rotation, then replay of the rotated-out token.
const refresh = (t) => token({ grant_type: 'refresh_token', refresh_token: t, client_id: 'bench-app' });
const rotated = await refresh(first);
const second = rotated.body.refresh_token;
if (rotated.status !== 200 || !second || second === first || !rotated.body.id_token) {
  fail(`refresh: expected a new refresh token and an ID token: ${rotated.status} ${JSON.stringify(rotated.body).slice(0, 200)}`);
}
checkKind('refresh', rotated.body.access_token);
const replay = await refresh(first);
if (replay.status !== 400 || replay.body.error !== 'invalid_grant') {
  fail(`a rotated-out refresh token was accepted again: ${replay.status} ${JSON.stringify(replay.body).slice(0, 200)}`);
}
const after = await refresh(second);
if (after.status !== 400 || after.body.error !== 'invalid_grant') {
  fail(`the replay did not revoke the grant: its newest refresh token still works (${after.status})`);
}
