// The peer of pforte's benchmark: the certified Node.js OpenID provider `oidc-provider`,
// configured like bench/realm.json configures pforte (same client ids, secret, redirect URI,
// user), so that bench/run.sh can drive both with the same load generator.
//
//   PORT=18090 node bench/peer/server.mjs      (listens on 127.0.0.1 only)
//
// STORAGE=sqlite (the default) keeps its state (sessions, grants, codes, refresh tokens) in a
// SQLite file, as pforte does (./sqlite_adapter.mjs, Node's built-in SQLite): the file is
// PEER_DATA_DIR/oidc.sqlite, or in a temp dir removed on exit. STORAGE=memory uses the
// in-memory store the package ships for development (an LRU of 1000 entries in this process,
// lost on restart, not shared between processes), which oidc-provider warns must be replaced.
//
// ACCESS_TOKEN_FORMAT=jwt (the default) makes its access tokens what pforte's and Keycloak's
// are: RFC 9068 JWTs signed with ES256, which a resource server verifies on its own. With
// ACCESS_TOKEN_FORMAT=opaque it issues its default opaque tokens instead: random strings
// that a resource server has to send back to it for introspection, which costs this server
// less per token (it signs nothing for client_credentials) and more per API call.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Provider from 'oidc-provider';

const host = '127.0.0.1';
const port = Number.parseInt(process.env.PORT ?? '18090', 10);
const accessTokenFormat = process.env.ACCESS_TOKEN_FORMAT ?? 'jwt';
if (!['jwt', 'opaque'].includes(accessTokenFormat)) {
  console.error(`peer: ACCESS_TOKEN_FORMAT must be jwt or opaque, not ${accessTokenFormat}`);
  process.exit(2);
}
const storage = process.env.STORAGE ?? 'sqlite';
if (!['sqlite', 'memory'].includes(storage)) {
  console.error(`peer: STORAGE must be sqlite or memory, not ${storage}`);
  process.exit(2);
}
const issuer = `http://${host}:${port}`;

let database;
if (storage === 'sqlite') {
  // Imported only here: node:sqlite needs Node 22.5 or newer.
  const { createSqliteAdapter } = await import('./sqlite_adapter.mjs');
  const given = process.env.PEER_DATA_DIR;
  const dir = given ?? mkdtempSync(join(tmpdir(), 'pforte-bench-peer-'));
  // 15 s: oidc-provider's default clockTolerance, which it also gives its in-memory store.
  database = { dir, owned: !given, ...createSqliteAdapter(join(dir, 'oidc.sqlite'), 15) };
}

// ES256 signing key, generated at start (pforte's realm default is ES256 too).
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `bench-${randomBytes(4).toString('hex')}`,
  alg: 'ES256',
  use: 'sig',
};

// The one test user (bench/realm.json's `bench`).
const USER = {
  sub: 'bench',
  email: 'bench@example.org',
  email_verified: true,
  given_name: 'Bench',
  family_name: 'User',
  name: 'Bench User',
  preferred_username: 'bench',
};

const configuration = {
  ...(database ? { adapter: database.Adapter } : {}),
  clients: [
    {
      // bench-cc: confidential, client_credentials only (client_secret_basic).
      client_id: 'bench-cc',
      client_secret: 'bench-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      // bench-app: public PKCE client for the code flow and refresh tokens.
      client_id: 'bench-app',
      application_type: 'web',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1:18099/cb'],
    },
  ],
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile'],
  features: {
    clientCredentials: { enabled: true },
    // The built-in login page (any login is accepted; the password is not checked).
    devInteractions: { enabled: true },
    // oidc-provider issues JWT access tokens only for a resource server (RFC 8707): every
    // token request without a `resource` parameter gets the one API below.
    ...(accessTokenFormat === 'jwt' ? {
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'urn:bench:api',
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'api',
          audience: 'urn:bench:api',
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        }),
      },
    } : {}),
  },
  // PKCE S256 for public clients (oidc-provider's default; `plain` is not supported).
  pkce: { required: () => true },
  // Always issue a refresh token to clients allowed the grant (no offline_access/consent
  // dance), and rotate it on every use: a rotated-out token is dead, as in pforte.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  // First-party client: no consent page (Keycloak's `consentRequired: false`), so the code
  // flow has the same user-visible steps on both sides. This is oidc-provider's documented
  // recipe for skipping consent.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      return ctx.oidc.provider.Grant.find(grantId);
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile offline_access');
    await grant.save();
    return grant;
  },
  async findAccount(_ctx, sub) {
    if (sub !== USER.sub) {
      return undefined;
    }
    return { accountId: sub, claims: async () => ({ ...USER }) };
  },
};

const provider = new Provider(issuer, configuration);
// No per-request logging; server errors are counted by the load generator, but say something
// if one happens so that a broken set-up is visible.
let serverErrors = 0;
provider.on('server_error', (_ctx, err) => {
  serverErrors += 1;
  if (serverErrors <= 5) {
    console.error(`peer: server_error: ${err?.stack ?? err}`);
  }
});

const server = createServer(provider.callback());
server.listen(port, host, () => {
  console.log(`peer listening on ${issuer} (oidc-provider, node ${process.version}, ${accessTokenFormat} access tokens, ${storage} storage)`);
});

function stop() {
  server.close();
  if (database) {
    database.close();
    if (database.owned) {
      rmSync(database.dir, { recursive: true, force: true });
    }
  }
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
