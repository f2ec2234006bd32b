#!/usr/bin/env node
// Interop check with node-soap: load the WSDL from the running service's URL, call
// UpdateUserPassword over the SOAP 1.1 and 1.2 ports, and receive each typed fault with
// its detail element. After every call, the request node-soap sent (client.lastRequest,
// client.lastRequestHeaders) must be in the port's SOAP version, envelope namespace and
// Content-Type, and so must the answer's Content-Type; a fault's code must be Client (1.1
// faultcode) or Sender (1.2 Code/Value). Usage: node client.js http://127.0.0.1:PORT/soap
// (demo data)
'use strict';
const crypto = require('crypto');
const soap = require('soap');

const ACCOUNT = 'http://myaccount.ispringlearn.com';
const OWNER = ['owner@example.com', 'Owner-Demo-Pass-7341'];
const SALES_ADMIN = ['sales.admin@example.com', 'Sales-Demo-Pass-2468'];
// Per label: the port, the envelope namespace, the Content-Type media type, the fault code.
const VERSIONS = {
  'SOAP 1.1': ['UserPasswordSoap11', 'http://schemas.xmlsoap.org/soap/envelope/', 'text/xml', 'Client'],
  'SOAP 1.2': ['UserPasswordSoap12', 'http://www.w3.org/2003/05/soap-envelope', 'application/soap+xml', 'Sender'],
};

let passed = 0;
let failed = 0;
function check(name, ok, info) {
  if (ok) { passed++; console.log(`ok   ${name}`); } else { failed++; console.log(`FAIL ${name} ${info || ''}`); }
}
const newPassword = () => `Nd-${crypto.randomBytes(9).toString('base64url')}-7!`;
const creds = (who) => ({ accountUrl: ACCOUNT, email: who[0], password: who[1] });

// The media type of a headers object's Content-Type (any case of the name), lower-cased.
function mediaType(headers) {
  const entry = Object.entries(headers || {}).find(([k]) => k.toLowerCase() === 'content-type');
  return entry ? String(entry[1]).split(';')[0].trim().toLowerCase() : null;
}

// The namespace of the Envelope element of an XML text (its prefix's declaration on it).
function envelopeNamespace(xml) {
  const m = /<(?:([\w.-]+):)?Envelope\b([^>]*)>/.exec(xml || '');
  if (!m) return null;
  const decl = new RegExp(`\\sxmlns${m[1] ? `:${m[1]}` : ''}\\s*=\\s*["']([^"']*)["']`).exec(m[2]);
  return decl ? decl[1] : null;
}

// The last exchange of `client` (see resetExchange) was in the SOAP version of `label`.
function checkVersion(client, name, label) {
  const [, ns, media] = VERSIONS[label];
  const got = [envelopeNamespace(client.lastRequest), mediaType(client.lastRequestHeaders),
    mediaType(client.lastResponseHeaders)];
  const want = [ns, media, media];
  check(`${name}: sent and answered as ${label}`, JSON.stringify(got) === JSON.stringify(want),
    `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

function resetExchange(client) {
  client.lastRequest = null;
  client.lastRequestHeaders = null;
  client.lastResponseHeaders = null;
}

// The fault code's local name: 1.1 faultcode, 1.2 Code/Value.
function faultCode(err) {
  const fault = err && err.root && err.root.Envelope && err.root.Envelope.Body && err.root.Envelope.Body.Fault;
  if (!fault) return null;
  let code = fault.faultcode !== undefined ? fault.faultcode : fault.Code && fault.Code.Value;
  if (code && typeof code === 'object') code = code.$value;
  return typeof code === 'string' ? code.trim().replace(/^.*:/, '') : null;
}

// Finds the detail element of a fault whatever prefixes the parser kept.
function faultDetail(err) {
  const body = err && err.root && err.root.Envelope && err.root.Envelope.Body;
  const fault = body && body.Fault;
  if (!fault) return [null, null];
  const detail = fault.detail || fault.Detail;
  if (!detail || typeof detail !== 'object') return [null, null];
  const name = Object.keys(detail).find((k) => k.endsWith('Fault'));
  return [name ? name.replace(/^.*:/, '') : null, name ? detail[name] : null];
}

async function expectFault(client, version, call, label, args, wantDetail, extra) {
  resetExchange(client);
  try {
    await call(args);
    check(label, false, 'no fault raised');
  } catch (err) {
    checkVersion(client, label, version);
    const [name, detail] = faultDetail(err);
    const code = faultCode(err);
    let ok = name === wantDetail && code === VERSIONS[version][3];
    for (const [k, v] of Object.entries(extra || {})) {
      const got = detail && detail[k];
      ok = ok && (Array.isArray(got) ? got.includes(v) : got === v);
    }
    check(label, ok, `detail=${name} code=${code} ${JSON.stringify(detail)} ${err.message}`);
  }
}

async function main(endpoint) {
  // disableCache: node-soap caches the parsed WSDL by URL and a client sets
  // forceSoap12Headers on that shared WSDL, so with the cache the 1.2 client would turn the
  // 1.1 client into a second SOAP 1.2 client.
  const ports = {
    'SOAP 1.1': await soap.createClientAsync(`${endpoint}?wsdl`, { disableCache: true }),
    'SOAP 1.2': await soap.createClientAsync(`${endpoint}?wsdl`, { disableCache: true, forceSoap12Headers: true }),
  };
  for (const [label, client] of Object.entries(ports)) {
    const port = VERSIONS[label][0];
    const op = client.UserPasswordService[port].UpdateUserPassword;
    const call = (args) => new Promise((resolve, reject) => {
      op(args, (err, result) => (err ? reject(err) : resolve(result)));
    });
    resetExchange(client);
    const result = await call({ credentials: creds(SALES_ADMIN), userId: 'u-learner', password: newPassword() });
    check(`${label}: success`, result && (result.success === true || result.success === 'true'), JSON.stringify(result));
    checkVersion(client, `${label}: success`, label);
    await expectFault(client, label, call, `${label}: WrongParametersFault`,
      { credentials: creds(OWNER), userId: 'u-learner', password: 'short' },
      'WrongParametersFault', { parameter: 'password', violation: 'TOO_SHORT' });
    await expectFault(client, label, call, `${label}: AuthenticationFailedFault`,
      { credentials: creds([OWNER[0], 'wrong-password-123']), userId: 'u-learner', password: newPassword() },
      'AuthenticationFailedFault');
    await expectFault(client, label, call, `${label}: UnknownUserFault`,
      { credentials: creds(OWNER), userId: 'u-nobody', password: newPassword() }, 'UnknownUserFault');
    await expectFault(client, label, call, `${label}: PermissionDeniedFault`,
      { credentials: creds(SALES_ADMIN), userId: 'u-engineer', password: newPassword() },
      'PermissionDeniedFault', { reason: 'NOT_IN_SCOPE' });
  }
  console.log(`node-soap: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main(process.argv[2]).catch((e) => { console.error(e); process.exit(1); });
