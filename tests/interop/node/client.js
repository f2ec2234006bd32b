#!/usr/bin/env node
// Interop check with node-soap: load the WSDL from the running service's URL, call every
// operation over the SOAP 1.1 and 1.2 ports, and receive each typed fault with its detail
// element: UpdateUserPassword (a change, its four typed faults; temporary=true, seen by
// GetUserPasswordStatus, the temporary user limited to their own status until their
// self-change clears it), UpdateUserPasswords (a mixed batch: one result per item, in order,
// each failed item's fault type, code and extras; WrongParametersFault for a userId twice,
// AuthenticationFailedFault) and GetUserPasswordStatus (fields and their JS types: booleans,
// a number, a Date; a deactivated and an externally managed user; UnknownUserFault,
// PermissionDeniedFault, AuthenticationFailedFault) and ResetUserPasswords (delivery=return
// for two named users: items in order, one link ORIGIN/reset/TOKEN with expiresAt a Date,
// one PermissionDeniedFault item, the counts; the link spent over HTTP, POST
// /api/password-resets/TOKEN: 200, then 410 on reuse; allInScope with delivery=notify: no
// link in the items, reset and skipped > 0; the whole call's WrongParametersFault for userId
// with allInScope, a userId twice, allInScope with delivery=return). Users: callers owner,
// admin and sales.admin (never changed); changed u-learner, u-learner2 (made temporary, then
// its own change), u-engineer, u-help (its reset link spent); reset callers admin (u-help,
// u-owner named) and emea.admin (allInScope: a link for u-learner, killed by its next
// change; never u-learner2, whose status must show no pending reset); failed sign-ins for
// owner and nobody@example.com. After every call, the request node-soap sent (client.lastRequest,
// client.lastRequestHeaders) must be in the port's SOAP version, envelope namespace and
// Content-Type, and so must the answer's Content-Type; a fault's code must be Client (1.1
// faultcode) or Sender (1.2 Code/Value). Usage: node client.js http://127.0.0.1:PORT/soap
// (demo data)
'use strict';
const crypto = require('crypto');
const http = require('http');
const soap = require('soap');

const ACCOUNT = 'http://myaccount.ispringlearn.com';
const OWNER = ['owner@example.com', 'Owner-Demo-Pass-7341'];
const SALES_ADMIN = ['sales.admin@example.com', 'Sales-Demo-Pass-2468'];
const ADMIN = ['admin@example.com', 'Admin-Demo-Pass-5820'];
const NOBODY = ['nobody@example.com', 'Nobody-Demo-Pass-0000'];
const EMEA_ADMIN = ['emea.admin@example.com', 'Emea-Demo-Pass-1357'];
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

// A GetUserPasswordStatusResult: every field with its JS type, and the wanted values.
function checkStatus(name, result, userId, want) {
  const types = {
    userId: 'string', status: 'string', externallyManaged: 'boolean', temporary: 'boolean',
    credentialVersion: 'number', resetPending: 'boolean',
  };
  const bad = [];
  if (!result || typeof result !== 'object') {
    check(name, false, `not a status: ${JSON.stringify(result)}`);
    return;
  }
  for (const [field, type] of Object.entries(types)) {
    if (typeof result[field] !== type) bad.push(`${field}=${JSON.stringify(result[field])} is not a ${type}`);
  }
  if (!Number.isInteger(result.credentialVersion)) bad.push(`credentialVersion ${result.credentialVersion} is not an integer`);
  if (!(result.passwordChangedAt instanceof Date) || Number.isNaN(result.passwordChangedAt.getTime())) {
    bad.push(`passwordChangedAt=${JSON.stringify(result.passwordChangedAt)} is not a Date`);
  }
  const wanted = { userId, resetPending: false, lockedUntil: undefined, ...want };
  for (const [field, value] of Object.entries(wanted)) {
    if (result[field] !== value) bad.push(`${field}=${JSON.stringify(result[field])}, want ${JSON.stringify(value)}`);
  }
  check(name, bad.length === 0, bad.join('; '));
}

// UpdateUserPassword temporary=true, seen by GetUserPasswordStatus; the temporary user may
// read only their own status, and their self-change clears the flag.
async function temporaryAndStatus(client, label, calls) {
  resetExchange(client);
  const before = await calls.GetUserPasswordStatus({ credentials: creds(ADMIN), userId: 'u-learner2' });
  checkVersion(client, `${label}: GetUserPasswordStatus`, label);
  checkStatus(`${label}: GetUserPasswordStatus fields and types`, before, 'u-learner2',
    { status: 'active', externallyManaged: false });
  const version = before && before.credentialVersion;
  const temporaryPassword = newPassword();
  resetExchange(client);
  const result = await calls.UpdateUserPassword({
    credentials: creds(ADMIN), userId: 'u-learner2', password: temporaryPassword, temporary: true,
  });
  check(`${label}: temporary change`, result && (result.success === true || result.success === 'true'), JSON.stringify(result));
  checkVersion(client, `${label}: temporary change`, label);
  check(`${label}: temporary change sends <temporary>true</temporary>`,
    /<(?:[\w.-]+:)?temporary>true<\/(?:[\w.-]+:)?temporary>/.test(client.lastRequest || ''), client.lastRequest);
  const after = await calls.GetUserPasswordStatus({ credentials: creds(ADMIN), userId: 'u-learner2' });
  checkStatus(`${label}: status after the temporary change`, after, 'u-learner2',
    { status: 'active', externallyManaged: false, temporary: true, credentialVersion: version + 1 });
  const learner2 = ['learner2@example.com', temporaryPassword];
  await expectFault(client, label, calls.GetUserPasswordStatus,
    `${label}: temporary caller reading another user's status: PermissionDeniedFault`,
    { credentials: creds(learner2), userId: 'u-learner' }, 'PermissionDeniedFault', { reason: 'PASSWORD_CHANGE_REQUIRED' });
  const own = await calls.GetUserPasswordStatus({ credentials: creds(learner2), userId: 'u-learner2' });
  checkStatus(`${label}: temporary caller reads their own status`, own, 'u-learner2',
    { status: 'active', externallyManaged: false, temporary: true });
  // A self-change is never temporary (temporary is ignored) and clears the flag.
  const self = await calls.UpdateUserPassword({
    credentials: creds(learner2), userId: 'u-learner2', password: newPassword(), temporary: true,
  });
  check(`${label}: self-change of a temporary password`, self && (self.success === true || self.success === 'true'), JSON.stringify(self));
  const cleared = await calls.GetUserPasswordStatus({ credentials: creds(ADMIN), userId: 'u-learner2' });
  checkStatus(`${label}: the self-change cleared temporary`, cleared, 'u-learner2',
    { status: 'active', externallyManaged: false, temporary: false, credentialVersion: version + 2 });
}

async function statusReads(client, label, calls) {
  checkStatus(`${label}: status of a deactivated user`,
    await calls.GetUserPasswordStatus({ credentials: creds(ADMIN), userId: 'u-former' }), 'u-former',
    { status: 'deactivated', externallyManaged: false });
  resetExchange(client);
  checkStatus(`${label}: status of an externally managed user`,
    await calls.GetUserPasswordStatus({ credentials: creds(OWNER), userId: 'u-sso' }), 'u-sso',
    { status: 'active', externallyManaged: true });
  checkVersion(client, `${label}: GetUserPasswordStatus`, label);
  await expectFault(client, label, calls.GetUserPasswordStatus, `${label}: GetUserPasswordStatus UnknownUserFault`,
    { credentials: creds(ADMIN), userId: 'u-nobody' }, 'UnknownUserFault');
  await expectFault(client, label, calls.GetUserPasswordStatus, `${label}: GetUserPasswordStatus PermissionDeniedFault`,
    { credentials: creds(SALES_ADMIN), userId: 'u-engineer' }, 'PermissionDeniedFault', { reason: 'NOT_IN_SCOPE' });
  await expectFault(client, label, calls.GetUserPasswordStatus, `${label}: GetUserPasswordStatus AuthenticationFailedFault`,
    { credentials: creds(NOBODY), userId: 'u-learner' }, 'AuthenticationFailedFault');
}

async function batch(client, label, calls) {
  const first = newPassword();
  const items = [
    { userId: 'u-engineer', password: first, passwordConfirm: first, temporary: false },
    { userId: 'u-owner', password: newPassword() },
    { userId: 'u-nobody', password: newPassword() },
    { userId: 'u-trainer', password: 'short' },
  ];
  const want = [
    ['u-engineer', null],
    ['u-owner', ['PermissionDeniedFault', 'PERMISSION_DENIED', { reason: 'OUTRANKS_CALLER' }]],
    ['u-nobody', ['UnknownUserFault', 'UNKNOWN_USER', {}]],
    ['u-trainer', ['WrongParametersFault', 'WRONG_PARAMETERS', { parameter: 'password', violation: 'TOO_SHORT' }]],
  ];
  resetExchange(client);
  const result = await calls.UpdateUserPasswords({ credentials: creds(ADMIN), item: items });
  checkVersion(client, `${label}: UpdateUserPasswords`, label);
  let got = result && result.item;
  if (got && !Array.isArray(got)) got = [got];
  check(`${label}: UpdateUserPasswords answers one item per request item`,
    Array.isArray(got) && got.length === want.length, JSON.stringify(result));
  (got || []).slice(0, want.length).forEach((item, i) => {
    const [userId, fault] = want[i];
    const problems = [];
    const success = item.success === true || item.success === 'true';
    if (item.userId !== userId || success !== (fault === null)) {
      problems.push(`userId=${item.userId} success=${JSON.stringify(item.success)}`);
    }
    if (fault === null) {
      if (item.fault !== undefined) problems.push(`unexpected fault ${JSON.stringify(item.fault)}`);
    } else if (!item.fault) {
      problems.push('no fault');
    } else {
      const [type, code, extras] = fault;
      if (item.fault.type !== type || item.fault.code !== code || !item.fault.message) {
        problems.push(`fault ${JSON.stringify(item.fault)}`);
      }
      for (const [k, v] of Object.entries(extras)) {
        const value = item.fault[k];
        if (!(Array.isArray(value) ? value.includes(v) : value === v)) problems.push(`${k}=${JSON.stringify(value)}, want ${v}`);
      }
    }
    check(`${label}: batch item ${i + 1} (${userId}: ${fault ? fault[0] : 'success'})`, problems.length === 0, problems.join('; '));
  });
  const unused = newPassword();
  await expectFault(client, label, calls.UpdateUserPasswords, `${label}: UpdateUserPasswords WrongParametersFault (a userId twice)`,
    { credentials: creds(ADMIN), item: [{ userId: 'u-engineer', password: unused }, { userId: 'u-engineer', password: newPassword() }] },
    'WrongParametersFault', { parameter: 'item/userId' });
  await expectFault(client, label, calls.UpdateUserPasswords, `${label}: UpdateUserPasswords AuthenticationFailedFault`,
    { credentials: creds(NOBODY), item: [{ userId: 'u-engineer', password: unused }] }, 'AuthenticationFailedFault');
}

// POSTs a JSON body to an http URL: resolves to { status, body (parsed JSON, or the text) }.
function postJson(url, value) {
  const data = Buffer.from(JSON.stringify(value));
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body = text;
        try { body = JSON.parse(text); } catch (e) { /* not JSON: the text */ }
        resolve({ status: res.statusCode, body });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

const asList = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);
const isTrue = (v) => v === true || v === 'true';
const isFalse = (v) => v === false || v === 'false';

// ResetUserPasswords: delivery=return for named users (a link spent over HTTP), allInScope
// with notify, and the typed faults of the whole call.
async function resets(client, label, calls, endpoint) {
  const origin = new URL(endpoint).origin;
  resetExchange(client);
  const result = await calls.ResetUserPasswords({
    credentials: creds(ADMIN), userId: ['u-help', 'u-owner'], delivery: 'return',
  });
  checkVersion(client, `${label}: ResetUserPasswords`, label);
  const items = asList(result && result.item);
  check(`${label}: ResetUserPasswords (return) answers one item per named user, in order`,
    JSON.stringify(items.map((i) => i.userId)) === JSON.stringify(['u-help', 'u-owner']), JSON.stringify(result));
  check(`${label}: ResetUserPasswords (return) counts reset=1 skipped=1`,
    result && result.reset === 1 && result.skipped === 1,
    `reset=${JSON.stringify(result && result.reset)} skipped=${JSON.stringify(result && result.skipped)}`);
  let link = null;
  if (items.length > 0) {
    const item = items[0];
    const problems = [];
    if (!isTrue(item.success) || item.fault !== undefined) {
      problems.push(`success=${JSON.stringify(item.success)} fault=${JSON.stringify(item.fault)}`);
    }
    const escaped = origin.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    if (typeof item.link !== 'string' || !new RegExp(`^${escaped}/reset/[A-Za-z0-9_-]{20,}$`).test(item.link)) {
      problems.push(`link=${JSON.stringify(item.link)} is not ${origin}/reset/TOKEN`);
    } else {
      link = item.link;
    }
    if (!(item.expiresAt instanceof Date) || Number.isNaN(item.expiresAt.getTime())) {
      problems.push(`expiresAt=${JSON.stringify(item.expiresAt)} is not a Date`);
    } else if (item.expiresAt.getTime() <= Date.now()) {
      problems.push(`expiresAt=${item.expiresAt.toISOString()} is not in the future`);
    }
    check(`${label}: reset item 1 (u-help: a link, expiresAt a Date)`, problems.length === 0, problems.join('; '));
  }
  if (items.length > 1) {
    const item = items[1];
    const problems = [];
    if (!isFalse(item.success) || item.link !== undefined || item.expiresAt !== undefined) {
      problems.push(`success=${JSON.stringify(item.success)} link=${item.link} expiresAt=${item.expiresAt}`);
    }
    const f = item.fault;
    if (!f || f.type !== 'PermissionDeniedFault' || f.code !== 'PERMISSION_DENIED' || f.reason !== 'OUTRANKS_CALLER' || !f.message) {
      problems.push(`fault ${JSON.stringify(f)}`);
    }
    check(`${label}: reset item 2 (u-owner: PermissionDeniedFault OUTRANKS_CALLER, no link)`, problems.length === 0,
      problems.join('; '));
  }
  if (link !== null) {
    // Spent as an LMS hosting its own form would: u-help's password changes (no later
    // stage signs in as u-help); a second use is refused.
    const api = `${origin}/api/password-resets/${link.split('/').pop()}`;
    const first = await postJson(api, { password: newPassword() });
    check(`${label}: the returned link spent over HTTP: 200 {"success":true}`,
      first.status === 200 && first.body && first.body.success === true, `${first.status} ${JSON.stringify(first.body)}`);
    const again = await postJson(api, { password: newPassword() });
    check(`${label}: the spent link used again: 410`, again.status === 410, `${again.status} ${JSON.stringify(again.body)}`);
  }
  // allInScope, delivery=notify: the d-emea admin's reach is u-learner (a link, sent to the
  // user) and u-trainer, u-former, u-sso (skipped); items only for the skipped.
  resetExchange(client);
  const all = await calls.ResetUserPasswords({ credentials: creds(EMEA_ADMIN), allInScope: true, delivery: 'notify' });
  checkVersion(client, `${label}: ResetUserPasswords allInScope`, label);
  const skippedItems = asList(all && all.item);
  const problems = [];
  for (const i of skippedItems) {
    if (i.link !== undefined) problems.push(`${i.userId}: link ${i.link}`);
    if (!isFalse(i.success) || !i.fault || i.fault.type !== 'PermissionDeniedFault') {
      problems.push(`${i.userId}: success=${JSON.stringify(i.success)} fault=${JSON.stringify(i.fault)}`);
    }
  }
  if (!(all && Number.isInteger(all.reset) && Number.isInteger(all.skipped) && all.reset > 0 && all.skipped > 0
    && all.skipped === skippedItems.length)) {
    problems.push(`reset=${all && all.reset} skipped=${all && all.skipped} with ${skippedItems.length} items`);
  }
  check(`${label}: ResetUserPasswords allInScope (notify): no link, only skipped items, counts > 0`,
    problems.length === 0, `${problems.join('; ')} ${JSON.stringify(all)}`);
  // Whole-call faults (decided before anyone is reset).
  await expectFault(client, label, calls.ResetUserPasswords,
    `${label}: ResetUserPasswords WrongParametersFault (userId and allInScope)`,
    { credentials: creds(EMEA_ADMIN), userId: ['u-learner'], allInScope: true }, 'WrongParametersFault', { parameter: 'userId' });
  check(`${label}: that request held both userId and allInScope`,
    /<(?:[\w.-]+:)?userId>/.test(client.lastRequest || '') && /<(?:[\w.-]+:)?allInScope>true</.test(client.lastRequest || ''),
    client.lastRequest);
  await expectFault(client, label, calls.ResetUserPasswords,
    `${label}: ResetUserPasswords WrongParametersFault (a userId twice)`,
    { credentials: creds(EMEA_ADMIN), userId: ['u-learner', 'u-learner'], delivery: 'return' },
    'WrongParametersFault', { parameter: 'userId' });
  await expectFault(client, label, calls.ResetUserPasswords,
    `${label}: ResetUserPasswords WrongParametersFault (allInScope, delivery=return)`,
    { credentials: creds(EMEA_ADMIN), allInScope: true, delivery: 'return' }, 'WrongParametersFault', { parameter: 'delivery' });
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
    const calls = {};
    for (const name of ['UpdateUserPassword', 'UpdateUserPasswords', 'GetUserPasswordStatus', 'ResetUserPasswords']) {
      const op = client.UserPasswordService[port][name];
      calls[name] = (args) => new Promise((resolve, reject) => {
        op(args, (err, result) => (err ? reject(err) : resolve(result)));
      });
    }
    const call = calls.UpdateUserPassword;
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
    for (const part of [temporaryAndStatus, statusReads, batch]) {
      try {
        await part(client, label, calls);
      } catch (err) {
        check(`${label}: ${part.name}`, false, `raised ${err && err.message}`);
      }
    }
    try {
      await resets(client, label, calls, endpoint);
    } catch (err) {
      check(`${label}: resets`, false, `raised ${err && err.message}`);
    }
  }
  console.log(`node-soap: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main(process.argv[2]).catch((e) => { console.error(e); process.exit(1); });
