#!/usr/bin/env node
// Interop check with node-soap: load the WSDL from the running service's URL, call
// UpdateUserPassword over the SOAP 1.1 and 1.2 ports, and receive each typed fault with
// its detail element. Usage: node client.js http://127.0.0.1:PORT/soap  (demo data)
'use strict';
const crypto = require('crypto');
const soap = require('soap');

const ACCOUNT = 'http://myaccount.ispringlearn.com';
const OWNER = ['owner@example.com', 'Owner-Demo-Pass-7341'];
const SALES_ADMIN = ['sales.admin@example.com', 'Sales-Demo-Pass-2468'];

let passed = 0;
let failed = 0;
function check(name, ok, info) {
  if (ok) { passed++; console.log(`ok   ${name}`); } else { failed++; console.log(`FAIL ${name} ${info || ''}`); }
}
const newPassword = () => `Nd-${crypto.randomBytes(9).toString('base64url')}-7!`;
const creds = (who) => ({ accountUrl: ACCOUNT, email: who[0], password: who[1] });

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

async function expectFault(call, label, args, wantDetail, extra) {
  try {
    await call(args);
    check(label, false, 'no fault raised');
  } catch (err) {
    const [name, detail] = faultDetail(err);
    let ok = name === wantDetail;
    for (const [k, v] of Object.entries(extra || {})) {
      const got = detail && detail[k];
      ok = ok && (Array.isArray(got) ? got.includes(v) : got === v);
    }
    check(label, ok, `detail=${name} ${JSON.stringify(detail)} ${err.message}`);
  }
}

async function main(endpoint) {
  const ports = {
    'SOAP 1.1': await soap.createClientAsync(`${endpoint}?wsdl`),
    'SOAP 1.2': await soap.createClientAsync(`${endpoint}?wsdl`, { forceSoap12Headers: true }),
  };
  for (const [label, client] of Object.entries(ports)) {
    const port = label === 'SOAP 1.1' ? 'UserPasswordSoap11' : 'UserPasswordSoap12';
    const op = client.UserPasswordService[port].UpdateUserPassword;
    const call = (args) => new Promise((resolve, reject) => {
      op(args, (err, result) => (err ? reject(err) : resolve(result)));
    });
    const result = await call({ credentials: creds(SALES_ADMIN), userId: 'u-learner', password: newPassword() });
    check(`${label}: success`, result && (result.success === true || result.success === 'true'), JSON.stringify(result));
    await expectFault(call, `${label}: WrongParametersFault`,
      { credentials: creds(OWNER), userId: 'u-learner', password: 'short' },
      'WrongParametersFault', { parameter: 'password', violation: 'TOO_SHORT' });
    await expectFault(call, `${label}: AuthenticationFailedFault`,
      { credentials: creds([OWNER[0], 'wrong-password-123']), userId: 'u-learner', password: newPassword() },
      'AuthenticationFailedFault');
    await expectFault(call, `${label}: UnknownUserFault`,
      { credentials: creds(OWNER), userId: 'u-nobody', password: newPassword() }, 'UnknownUserFault');
    await expectFault(call, `${label}: PermissionDeniedFault`,
      { credentials: creds(SALES_ADMIN), userId: 'u-engineer', password: newPassword() },
      'PermissionDeniedFault', { reason: 'NOT_IN_SCOPE' });
  }
  console.log(`node-soap: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main(process.argv[2]).catch((e) => { console.error(e); process.exit(1); });
