<?php
// Interop check with PHP's ext-soap SoapClient in WSDL mode: load the WSDL from the running
// service's URL alone, and over the SOAP 1.1 and the SOAP 1.2 port call every operation of
// the WSDL (UpdateUserPassword, UpdateUserPasswords, GetUserPasswordStatus, ResetUserPasswords):
// success, a temporary password and what it forbids, a non-ASCII password, a mixed batch with
// per-item faults, the status fields (lockedUntil after a lockout too), resets by link (named
// users with delivery=return: each item's link and expiry or fault, the counts; a returned link's
// form fetched over HTTP, then the link spent through the JSON twin, 200 then 410; another link
// dead once its user's password changes; allInScope with delivery=notify), and every typed fault
// as a SoapFault whose decoded $fault->detail holds the detail
// element (code, parameter, violations, reason). After every call, the exchange recorded by
// SoapClient (trace) must be in the port's SOAP version: envelope namespace, request and
// response Content-Type, fault code (Client / Sender) and HTTP status (200; fault: 500 for
// SOAP 1.1, 400 for a SOAP 1.2 Sender fault).
//
// Usage: php client.php ENDPOINT [ENDPOINT_FOR_SOAP12]
//   e.g. php client.php http://127.0.0.1:PORT/soap   (the service must run with --demo data)
// With a second endpoint the SOAP 1.2 port is exercised on that server (a fresh one), else
// both ports run on the same server one after the other: the client remembers every password
// it sets and checks the status relative to what it read before, so the runs do not clash.
declare(strict_types=1);

const API = 'http://ispringlearn.com/go/services/api/soap';
const ACCOUNT = 'http://myaccount.ispringlearn.com';
// Per label: PHP's soap_version, the WSDL port, the envelope namespace, the Content-Type media
// type, the fault code's local name, a fault's HTTP status.
const VERSIONS = [
    'SOAP 1.1' => [SOAP_1_1, 'UserPasswordSoap11', 'http://schemas.xmlsoap.org/soap/envelope/', 'text/xml',
        'Client', 500],
    'SOAP 1.2' => [SOAP_1_2, 'UserPasswordSoap12', 'http://www.w3.org/2003/05/soap-envelope', 'application/soap+xml',
        'Sender', 400],
];
const FAULTSTRINGS = [
    'WrongParametersFault' => 'Wrong parameters',
    'AuthenticationFailedFault' => 'Authorization failed',
    'UnknownUserFault' => 'Unknown user',
    'PermissionDeniedFault' => 'Permission denied',
];
const CODES = [
    'WrongParametersFault' => 'WRONG_PARAMETERS',
    'AuthenticationFailedFault' => 'AUTHENTICATION_FAILED',
    'UnknownUserFault' => 'UNKNOWN_USER',
    'PermissionDeniedFault' => 'PERMISSION_DENIED',
];

// The demo directory's users this client signs in as (e-mail => password); every password
// the client sets is recorded here, so a later sign-in uses it.
$passwords = [
    'owner@example.com' => 'Owner-Demo-Pass-7341',
    'admin@example.com' => 'Admin-Demo-Pass-5820',
    'sales.admin@example.com' => 'Sales-Demo-Pass-2468',
    'emea.admin@example.com' => 'Emea-Demo-Pass-1357',
    'learner2@example.com' => 'Learner2-Demo-Pass-7193',
];

$passed = 0;
$failed = 0;

function check(string $name, bool $ok, string $info = ''): void
{
    global $passed, $failed;
    if ($ok) {
        $passed++;
        echo "ok   $name\n";
    } else {
        $failed++;
        echo "FAIL $name $info\n";
    }
}

function j($value): string
{
    return (string)json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
}

function new_password(): string
{
    return 'Ph-' . rtrim(strtr(base64_encode(random_bytes(12)), '+/', '-_'), '=') . '-7!';
}

function creds(string $email, ?string $password = null): array
{
    global $passwords;
    return ['accountUrl' => ACCOUNT, 'email' => $email, 'password' => $password ?? $passwords[$email]];
}

// A repeated element decodes as an array, a single one as a scalar/object, none as unset.
function as_list($value): array
{
    if ($value === null) {
        return [];
    }
    return is_array($value) ? $value : [$value];
}

function media_type(string $headers): ?string
{
    return preg_match('/^content-type:\s*([^;\r\n]+)/mi', $headers, $m) ? strtolower(trim($m[1])) : null;
}

function http_status(string $headers): ?int
{
    return preg_match('#^HTTP/\S+\s+(\d{3})#', $headers, $m) ? (int)$m[1] : null;
}

// The namespace of the Envelope element of an XML text (its prefix's declaration on it). A
// regular expression, not DOM: Debian's php-cli and php-soap come without ext-dom.
function envelope_namespace(?string $xml): ?string
{
    if ($xml === null || !preg_match('/<(?:([\w.-]+):)?Envelope\b([^>]*)>/', $xml, $m)) {
        return null;
    }
    $prefix = $m[1] !== '' ? ':' . preg_quote($m[1], '/') : '';
    return preg_match('/\sxmlns' . $prefix . '\s*=\s*["\']([^"\']*)["\']/', $m[2], $d) ? $d[1] : null;
}

// The location of the address element of the WSDL port $port (any prefixes), or null.
function port_location(string $wsdl, string $port): ?string
{
    $re = '/<(?:[\w.-]+:)?port\b[^>]*\bname\s*=\s*["\']' . preg_quote($port, '/')
        . '["\'][^>]*>(.*?)<\/(?:[\w.-]+:)?port\s*>/s';
    if (!preg_match($re, $wsdl, $m)) {
        return null;
    }
    return preg_match('/<(?:[\w.-]+:)?address\b[^>]*\blocation\s*=\s*["\']([^"\']*)["\']/', $m[1], $a)
        ? html_entity_decode($a[1], ENT_QUOTES | ENT_XML1) : null;
}

// The last exchange of $client was in the SOAP version of $label, answered with $status.
function check_version(SoapClient $client, string $name, string $label, int $status): void
{
    [, , $ns, $media] = VERSIONS[$label];
    $got = [envelope_namespace($client->__getLastRequest()), media_type((string)$client->__getLastRequestHeaders()),
        media_type((string)$client->__getLastResponseHeaders()), http_status((string)$client->__getLastResponseHeaders())];
    $want = [$ns, $media, $media, $status];
    check("$name: sent and answered as $label (HTTP $status)", $got === $want,
        'got ' . j($got) . ', want ' . j($want));
}

// Calls $op and expects a SoapFault whose detail is the $type element, with $extra children:
// name => value (that value among the child's values; violation may repeat).
function expect_fault(SoapClient $client, string $label, string $name, string $op, array $args, string $type,
                      array $extra = []): void
{
    try {
        $result = $client->$op($args);
        check($name, false, 'no fault raised: ' . j($result));
        return;
    } catch (SoapFault $f) {
        check_version($client, $name, $label, VERSIONS[$label][5]);
        $code = preg_replace('/^.*:/', '', (string)$f->faultcode);
        $detail = is_object($f->detail ?? null) ? $f->detail : null;
        $element = $detail !== null && isset($detail->$type) ? $detail->$type : null;
        $ok = $element !== null && $code === VERSIONS[$label][4] && $f->faultstring === FAULTSTRINGS[$type]
            && ($element->code ?? null) === CODES[$type] && is_string($element->message ?? null)
            && $element->message !== '';
        foreach ($extra as $child => $want) {
            $ok = $ok && in_array($want, as_list($element->$child ?? null), true);
        }
        check($name, $ok, "faultcode={$f->faultcode} faultstring={$f->faultstring} detail="
            . j($f->detail ?? null) . ' response=' . $client->__getLastResponse());
    }
}

// Calls $op, expecting a result; checks the version of the exchange. null on a fault.
function call_ok(SoapClient $client, string $label, string $name, string $op, array $args)
{
    try {
        $result = $client->$op($args);
    } catch (SoapFault $f) {
        check($name, false, "fault {$f->faultcode} {$f->faultstring} " . j($f->detail ?? null)
            . ' request=' . $client->__getLastRequest() . ' response=' . $client->__getLastResponse());
        return null;
    }
    check_version($client, $name, $label, 200);
    return $result;
}

function status(SoapClient $client, string $label, string $name, string $caller, string $userId)
{
    return call_ok($client, $label, $name, 'GetUserPasswordStatus', ['credentials' => creds($caller), 'userId' => $userId]);
}

function set_password(SoapClient $client, string $label, string $name, array $args, ?string $email = null): bool
{
    global $passwords;
    $result = call_ok($client, $label, $name, 'UpdateUserPassword', $args);
    $ok = is_object($result) && ($result->success ?? null) === true;
    check($name, $ok, j($result));
    if ($ok && $email !== null) {
        $passwords[$email] = $args['password'];
    }
    return $ok;
}

// A plain HTTP exchange (no SOAP): [status, media type, body]; 4xx and 5xx answers are read too.
function http_exchange(string $method, string $url, ?string $json = null): array
{
    $options = ['method' => $method, 'ignore_errors' => true, 'timeout' => 30];
    if ($json !== null) {
        $options['header'] = "Content-Type: application/json\r\n";
        $options['content'] = $json;
    }
    $body = @file_get_contents($url, false, stream_context_create(['http' => $options]));
    // file_get_contents sets $http_response_header in this scope (every response's lines).
    $headers = implode("\r\n", $http_response_header ?? []);
    return [http_status($headers), media_type($headers), $body === false ? null : $body];
}

// The item of a batch result for $userId, or null.
function batch_item($result, string $userId)
{
    foreach (as_list(is_object($result) ? ($result->item ?? null) : null) as $item) {
        if (($item->userId ?? null) === $userId) {
            return $item;
        }
    }
    return null;
}

function run_port(string $label, string $endpoint): void
{
    global $passwords;
    [$version, $port] = VERSIONS[$label];
    $wsdl = "$endpoint?wsdl";

    // The port's address, as a client picking a port of the WSDL would read it.
    $text = @file_get_contents($wsdl);
    $location = $text === false ? null : port_location($text, $port);
    check("$label: WSDL port $port has address $endpoint", $location === $endpoint, "got " . j($location));

    try {
        $client = new SoapClient($wsdl, [
            'soap_version' => $version,
            'location' => $location ?: $endpoint,
            'trace' => true,
            'exceptions' => true,
            'cache_wsdl' => WSDL_CACHE_NONE,
            'connection_timeout' => 10,
        ]);
    } catch (SoapFault $f) {
        check("$label: SoapClient loads $wsdl", false, $f->getMessage());
        return;
    }
    $functions = implode("\n", $client->__getFunctions());
    foreach (['UpdateUserPassword', 'UpdateUserPasswords', 'GetUserPasswordStatus', 'ResetUserPasswords'] as $op) {
        check("$label: WSDL declares $op", preg_match("/ $op\\(\\w+Request \\\$parameters\\)/", $functions) === 1, $functions);
    }

    $sales = 'sales.admin@example.com';
    $owner = 'owner@example.com';
    $admin = 'admin@example.com';
    $emeaAdmin = 'emea.admin@example.com';

    // --- UpdateUserPassword and GetUserPasswordStatus: success --------------------------------
    $before = status($client, $label, "$label: GetUserPasswordStatus u-learner (before)", $sales, 'u-learner');
    set_password($client, $label, "$label: UpdateUserPassword success", [
        'credentials' => creds($sales), 'userId' => 'u-learner', 'password' => new_password()]);
    $p = new_password();
    set_password($client, $label, "$label: UpdateUserPassword success with passwordConfirm and temporary=false", [
        'credentials' => creds($sales), 'userId' => 'u-learner', 'password' => $p, 'passwordConfirm' => $p,
        'temporary' => false]);
    $after = status($client, $label, "$label: GetUserPasswordStatus u-learner", $sales, 'u-learner');
    if (is_object($before) && is_object($after)) {
        $ok = ($after->userId ?? null) === 'u-learner' && ($after->status ?? null) === 'active'
            && ($after->externallyManaged ?? null) === false && ($after->temporary ?? null) === false
            && ($after->resetPending ?? null) === false && !isset($after->lockedUntil)
            && is_int($after->credentialVersion ?? null) && is_int($before->credentialVersion ?? null)
            && $after->credentialVersion === $before->credentialVersion + 2
            && is_string($after->passwordChangedAt ?? null)
            && preg_match('/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/', $after->passwordChangedAt) === 1
            && strcmp($after->passwordChangedAt, (string)$before->passwordChangedAt) >= 0;
        check("$label: GetUserPasswordStatus fields (active, not external, not temporary, version +2, "
            . "passwordChangedAt UTC)", $ok, 'before=' . j($before) . ' after=' . j($after));
    }
    // PHP's documented compression option: every request body is gzip (Content-Encoding).
    try {
        $gz = new SoapClient($wsdl, [
            'soap_version' => $version,
            'location' => $location ?: $endpoint,
            'trace' => true,
            'exceptions' => true,
            'cache_wsdl' => WSDL_CACHE_NONE,
            'connection_timeout' => 10,
            'compression' => SOAP_COMPRESSION_ACCEPT | SOAP_COMPRESSION_GZIP | 9,
        ]);
        $zipped = status($gz, $label, "$label: GetUserPasswordStatus with compression (gzip request body)", $sales, 'u-learner');
        check("$label: the gzip request was sent gzip and read", is_object($zipped)
            && stripos((string)$gz->__getLastRequestHeaders(), 'Content-Encoding: gzip') !== false,
            (string)$gz->__getLastRequestHeaders());
    } catch (SoapFault $f) {
        check("$label: SoapClient with compression", false, $f->getMessage());
    }
    $sso = status($client, $label, "$label: GetUserPasswordStatus u-sso", $owner, 'u-sso');
    check("$label: GetUserPasswordStatus u-sso is externally managed",
        is_object($sso) && ($sso->externallyManaged ?? null) === true && ($sso->status ?? null) === 'active',
        j($sso));
    $former = status($client, $label, "$label: GetUserPasswordStatus u-former", $owner, 'u-former');
    check("$label: GetUserPasswordStatus u-former is deactivated",
        is_object($former) && ($former->status ?? null) === 'deactivated', j($former));

    // --- UpdateUserPassword: every typed fault ------------------------------------------------
    $op = 'UpdateUserPassword';
    expect_fault($client, $label, "$label: $op WrongParametersFault (policy violations)", $op,
        ['credentials' => creds($owner), 'userId' => 'u-learner', 'password' => 'learner'],
        'WrongParametersFault', ['parameter' => 'password', 'violation' => 'TOO_SHORT']);
    expect_fault($client, $label, "$label: $op WrongParametersFault lists CONTAINS_EMAIL too", $op,
        ['credentials' => creds($owner), 'userId' => 'u-learner', 'password' => 'learner'],
        'WrongParametersFault', ['violation' => 'CONTAINS_EMAIL']);
    expect_fault($client, $label, "$label: $op WrongParametersFault (single violation)", $op,
        ['credentials' => creds($owner), 'userId' => 'u-learner', 'password' => 'Xq7#z'],
        'WrongParametersFault', ['parameter' => 'password', 'violation' => 'TOO_SHORT']);
    $p = new_password();
    expect_fault($client, $label, "$label: $op WrongParametersFault (passwordConfirm differs)", $op,
        ['credentials' => creds($owner), 'userId' => 'u-learner', 'password' => $p, 'passwordConfirm' => $p . 'x'],
        'WrongParametersFault', ['parameter' => 'passwordConfirm', 'violation' => 'CONFIRM_MISMATCH']);
    expect_fault($client, $label, "$label: $op AuthenticationFailedFault", $op,
        ['credentials' => creds($owner, 'wrong-password-123'), 'userId' => 'u-learner', 'password' => new_password()],
        'AuthenticationFailedFault');
    expect_fault($client, $label, "$label: $op UnknownUserFault", $op,
        ['credentials' => creds($owner), 'userId' => 'u-nobody', 'password' => new_password()], 'UnknownUserFault');
    foreach ([[$sales, 'u-engineer', 'NOT_IN_SCOPE'], [$admin, 'u-owner', 'OUTRANKS_CALLER'],
                 [$owner, 'u-former', 'USER_DEACTIVATED'], [$owner, 'u-sso', 'EXTERNALLY_MANAGED']] as [$c, $u, $reason]) {
        expect_fault($client, $label, "$label: $op PermissionDeniedFault $reason", $op,
            ['credentials' => creds($c), 'userId' => $u, 'password' => new_password()],
            'PermissionDeniedFault', ['reason' => $reason]);
    }

    // --- temporary=true: the user must change it, and may do nothing else until then ----------
    $temp = new_password();
    set_password($client, $label, "$label: UpdateUserPassword temporary=true (emea.admin by sales.admin)", [
        'credentials' => creds($sales), 'userId' => 'u-emea-admin', 'password' => $temp, 'temporary' => true],
        $emeaAdmin);
    $st = status($client, $label, "$label: GetUserPasswordStatus u-emea-admin", $sales, 'u-emea-admin');
    check("$label: GetUserPasswordStatus shows temporary=true", is_object($st) && ($st->temporary ?? null) === true,
        j($st));
    expect_fault($client, $label, "$label: $op PermissionDeniedFault PASSWORD_CHANGE_REQUIRED", $op,
        ['credentials' => creds($emeaAdmin), 'userId' => 'u-learner', 'password' => new_password()],
        'PermissionDeniedFault', ['reason' => 'PASSWORD_CHANGE_REQUIRED']);
    $own = status($client, $label, "$label: GetUserPasswordStatus own status while temporary", $emeaAdmin, 'u-emea-admin');
    check("$label: own status while temporary says temporary=true",
        is_object($own) && ($own->temporary ?? null) === true, j($own));
    // A non-ASCII password (UTF-8 on the wire), then used to sign in.
    set_password($client, $label,
        "$label: UpdateUserPassword self-change to a non-ASCII password (temporary=true ignored)", [
        'credentials' => creds($emeaAdmin), 'userId' => 'u-emea-admin', 'password' => new_password() . "Ünï-密码-€",
        'temporary' => true], $emeaAdmin);
    $st = status($client, $label, "$label: GetUserPasswordStatus signed in with the non-ASCII password", $emeaAdmin,
        'u-emea-admin');
    check("$label: self-change cleared temporary", is_object($st) && ($st->temporary ?? null) === false,
        j($st));

    // --- UpdateUserPasswords: a mixed batch, then whole-call faults ---------------------------
    $op = 'UpdateUserPasswords';
    $p = new_password();
    $result = call_ok($client, $label, "$label: $op mixed batch", $op, ['credentials' => creds($sales), 'item' => [
        ['userId' => 'u-learner', 'password' => $p, 'passwordConfirm' => $p],
        ['userId' => 'u-trainer', 'password' => new_password(), 'temporary' => true],
        ['userId' => 'u-engineer', 'password' => new_password()],
        ['userId' => 'u-nobody', 'password' => new_password()],
        ['userId' => 'u-learner2', 'password' => 'learner2'],
        ['userId' => 'u-former', 'password' => new_password()],
    ]]);
    $items = as_list(is_object($result) ? ($result->item ?? null) : null);
    check("$label: $op answers one item per request item, in order",
        array_map(fn($i) => $i->userId ?? null, $items)
            === ['u-learner', 'u-trainer', 'u-engineer', 'u-nobody', 'u-learner2', 'u-former'],
        j($result));
    foreach (['u-learner', 'u-trainer'] as $u) {
        $item = batch_item($result, $u);
        check("$label: $op item $u success", is_object($item) && ($item->success ?? null) === true
            && !isset($item->fault), j($item));
    }
    foreach ([['u-engineer', 'PermissionDeniedFault', 'PERMISSION_DENIED', 'reason', 'NOT_IN_SCOPE'],
                 ['u-nobody', 'UnknownUserFault', 'UNKNOWN_USER', null, null],
                 ['u-learner2', 'WrongParametersFault', 'WRONG_PARAMETERS', 'violation', 'TOO_SHORT'],
                 ['u-former', 'PermissionDeniedFault', 'PERMISSION_DENIED', 'reason', 'USER_DEACTIVATED']]
             as [$u, $type, $code, $child, $value]) {
        $item = batch_item($result, $u);
        $fault = is_object($item) ? ($item->fault ?? null) : null;
        $ok = is_object($item) && ($item->success ?? null) === false && is_object($fault)
            && ($fault->type ?? null) === $type && ($fault->code ?? null) === $code && is_string($fault->message ?? null);
        if ($child !== null) {
            $ok = $ok && in_array($value, as_list($fault->$child ?? null), true);
        }
        if ($type === 'WrongParametersFault') {
            $ok = $ok && ($fault->parameter ?? null) === 'password'
                && in_array('CONTAINS_EMAIL', as_list($fault->violation ?? null), true);
        }
        check("$label: $op item $u fault $type" . ($value ? " $value" : ''), $ok, j($item));
    }
    $st = status($client, $label, "$label: GetUserPasswordStatus u-trainer after batch", $sales, 'u-trainer');
    check("$label: batch item temporary=true is reported", is_object($st) && ($st->temporary ?? null) === true,
        j($st));
    $single = call_ok($client, $label, "$label: $op one item", $op, ['credentials' => creds($sales), 'item' => [
        ['userId' => 'u-learner', 'password' => new_password()]]]);
    $item = batch_item($single, 'u-learner');
    check("$label: $op one item success", is_object($item) && ($item->success ?? null) === true, j($single));
    expect_fault($client, $label, "$label: $op AuthenticationFailedFault", $op,
        ['credentials' => creds($owner, 'wrong-password-123'), 'item' => [['userId' => 'u-learner', 'password' => new_password()]]],
        'AuthenticationFailedFault');
    expect_fault($client, $label, "$label: $op WrongParametersFault (userId twice)", $op,
        ['credentials' => creds($sales), 'item' => [['userId' => 'u-learner', 'password' => new_password()],
            ['userId' => 'u-learner', 'password' => new_password()]]],
        'WrongParametersFault', ['parameter' => 'item/userId']);

    // --- lockout: 10 failed sign-ins lock the (account, e-mail) pair; the status shows it ------
    $learner2 = 'learner2@example.com';
    $got = [];
    for ($i = 0; $i < 10; $i++) {
        try {
            $client->GetUserPasswordStatus(['credentials' => creds($learner2, 'wrong-password-123'), 'userId' => 'u-learner2']);
            $got[] = 'no fault';
        } catch (SoapFault $f) {
            $got[] = is_object($f->detail ?? null) ? implode(',', array_keys(get_object_vars($f->detail))) : 'no detail';
        }
    }
    check("$label: 10 failed sign-ins of learner2: AuthenticationFailedFault each",
        $got === array_fill(0, 10, 'AuthenticationFailedFault'), j($got));
    expect_fault($client, $label,
        "$label: GetUserPasswordStatus AuthenticationFailedFault with the right password while locked",
        'GetUserPasswordStatus', ['credentials' => creds($learner2), 'userId' => 'u-learner2'], 'AuthenticationFailedFault');
    $st = status($client, $label, "$label: GetUserPasswordStatus u-learner2 while locked", $owner, 'u-learner2');
    $until = is_object($st) ? ($st->lockedUntil ?? null) : null;
    check("$label: GetUserPasswordStatus lockedUntil is a UTC time in the future",
        is_string($until) && preg_match('/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/', $until) === 1
        && strtotime($until) > time(), j($st));

    // --- GetUserPasswordStatus: typed faults --------------------------------------------------
    $op = 'GetUserPasswordStatus';
    expect_fault($client, $label, "$label: $op AuthenticationFailedFault", $op,
        ['credentials' => creds($owner, 'wrong-password-123'), 'userId' => 'u-learner'], 'AuthenticationFailedFault');
    expect_fault($client, $label, "$label: $op UnknownUserFault", $op,
        ['credentials' => creds($owner), 'userId' => 'u-nobody'], 'UnknownUserFault');
    expect_fault($client, $label, "$label: $op PermissionDeniedFault NOT_IN_SCOPE", $op,
        ['credentials' => creds($sales), 'userId' => 'u-engineer'], 'PermissionDeniedFault', ['reason' => 'NOT_IN_SCOPE']);
    expect_fault($client, $label, "$label: $op WrongParametersFault (blank userId)", $op,
        ['credentials' => creds($sales), 'userId' => ' '], 'WrongParametersFault', ['parameter' => 'userId']);

    // --- ResetUserPasswords: links, never a password; the old password works until one is used --
    // Last, so that no earlier check meets a pending link. u-trainer's link is spent (no check
    // signs in as u-trainer); u-learner's dies with its next password change.
    $op = 'ResetUserPasswords';
    $origin = preg_replace('#^(https?://[^/]+).*$#', '$1', $endpoint);
    $named = ['u-trainer', 'u-learner', 'u-engineer', 'u-former'];
    $result = call_ok($client, $label, "$label: $op (return) for four named users", $op,
        ['credentials' => creds($sales), 'userId' => $named, 'delivery' => 'return']);
    $items = as_list(is_object($result) ? ($result->item ?? null) : null);
    check("$label: $op (return) answers one item per named user, in order",
        array_map(fn($i) => $i->userId ?? null, $items) === $named, j($result));
    check("$label: $op (return) counts reset=2 skipped=2",
        is_object($result) && ($result->reset ?? null) === 2 && ($result->skipped ?? null) === 2, j($result));
    $links = [];
    foreach (['u-trainer', 'u-learner'] as $u) {
        $item = batch_item($result, $u);
        $link = is_object($item) ? ($item->link ?? null) : null;
        $expires = is_object($item) ? ($item->expiresAt ?? null) : null;
        // expiresAt: after now, within the contract's longest reset-ttl (7 days).
        $ok = is_object($item) && ($item->success ?? null) === true && !isset($item->fault)
            && is_string($link) && preg_match('#^' . preg_quote($origin, '#') . '/reset/[A-Za-z0-9_-]{22,}$#', $link) === 1
            && is_string($expires) && preg_match('/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/', $expires) === 1
            && strtotime($expires) > time() && strtotime($expires) <= time() + 7 * 86400;
        check("$label: $op item $u success, link $origin/reset/TOKEN, expiresAt a UTC time ahead", $ok, j($item));
        $links[$u] = $ok ? $link : null;
    }
    foreach ([['u-engineer', 'NOT_IN_SCOPE'], ['u-former', 'USER_DEACTIVATED']] as [$u, $reason]) {
        $item = batch_item($result, $u);
        $fault = is_object($item) ? ($item->fault ?? null) : null;
        check("$label: $op item $u fault PermissionDeniedFault $reason, no link", is_object($item)
            && ($item->success ?? null) === false && !isset($item->link) && !isset($item->expiresAt)
            && is_object($fault) && ($fault->type ?? null) === 'PermissionDeniedFault'
            && ($fault->code ?? null) === 'PERMISSION_DENIED' && ($fault->reason ?? null) === $reason
            && is_string($fault->message ?? null) && $fault->message !== '', j($item));
    }
    $st = status($client, $label, "$label: GetUserPasswordStatus u-learner with a link pending", $sales, 'u-learner');
    check("$label: GetUserPasswordStatus shows resetPending=true", is_object($st) && ($st->resetPending ?? null) === true,
        j($st));

    // The link, as the user opens it: the form; then spent as an LMS hosting its own form would.
    if ($links['u-trainer'] !== null) {
        $link = $links['u-trainer'];
        [$code, $media, $page] = http_exchange('GET', $link);
        $ok = $code === 200 && $media === 'text/html' && is_string($page)
            && preg_match('#<form\b[^>]*\bmethod="post"#i', $page) === 1
            && preg_match('#<input\b[^>]*\bname="password"[^>]*\btype="password"#', $page) === 1
            && preg_match('#<input\b[^>]*\bname="passwordConfirm"[^>]*\btype="password"#', $page) === 1;
        check("$label: GET the returned link: 200, the form (password, passwordConfirm)", $ok,
            "HTTP $code $media " . substr((string)$page, 0, 300));
        $api = "$origin/api/password-resets/" . substr($link, strrpos($link, '/') + 1);
        $p = new_password();
        [$code, $media, $body] = http_exchange('POST', $api, j(['password' => $p, 'passwordConfirm' => $p]));
        check("$label: POST /api/password-resets/TOKEN: 200 {\"success\":true}",
            $code === 200 && $media === 'application/json' && json_decode((string)$body, true) === ['success' => true],
            "HTTP $code $media $body");
        $p = new_password();
        [$code, $media, $body] = http_exchange('POST', $api, j(['password' => $p, 'passwordConfirm' => $p]));
        check("$label: the spent link used again: 410 problem+json", $code === 410
            && $media === 'application/problem+json' && (json_decode((string)$body, true)['status'] ?? null) === 410,
            "HTTP $code $media $body");
        $st = status($client, $label, "$label: GetUserPasswordStatus u-trainer after its link was spent", $sales,
            'u-trainer');
        check("$label: the spent link cleared temporary and resetPending", is_object($st)
            && ($st->temporary ?? null) === false && ($st->resetPending ?? null) === false, j($st));
    }
    // A link dies when its user's password changes by any path.
    if ($links['u-learner'] !== null) {
        set_password($client, $label, "$label: UpdateUserPassword u-learner while its link is pending", [
            'credentials' => creds($sales), 'userId' => 'u-learner', 'password' => new_password()]);
        [$code, $media] = http_exchange('GET', $links['u-learner']);
        check("$label: GET u-learner's link after its password changed: 410", $code === 410 && $media === 'text/html',
            "HTTP $code $media");
    }

    // allInScope with delivery=notify: the d-emea admin's reach but itself is u-learner (reset, its
    // link sent to the user only) and u-trainer, u-former, u-sso (skipped); only those are listed.
    $result = call_ok($client, $label, "$label: $op allInScope (notify)", $op,
        ['credentials' => creds($emeaAdmin), 'allInScope' => true, 'delivery' => 'notify']);
    $items = as_list(is_object($result) ? ($result->item ?? null) : null);
    $got = array_map(fn($i) => [$i->userId ?? null, $i->success ?? null, isset($i->link),
        $i->fault->type ?? null, $i->fault->reason ?? null], $items);
    check("$label: $op allInScope lists only the skipped users, with their fault and no link", $got === [
        ['u-trainer', false, false, 'PermissionDeniedFault', 'OUTRANKS_CALLER'],
        ['u-former', false, false, 'PermissionDeniedFault', 'USER_DEACTIVATED'],
        ['u-sso', false, false, 'PermissionDeniedFault', 'EXTERNALLY_MANAGED']], j($result));
    check("$label: $op allInScope counts reset=1 skipped=3",
        is_object($result) && ($result->reset ?? null) === 1 && ($result->skipped ?? null) === 3, j($result));
    $st = status($client, $label, "$label: GetUserPasswordStatus u-learner after allInScope", $sales, 'u-learner');
    check("$label: allInScope left u-learner a pending link", is_object($st) && ($st->resetPending ?? null) === true,
        j($st));

    // Whole-call faults: decided before anyone is reset.
    expect_fault($client, $label, "$label: $op WrongParametersFault (allInScope, delivery=return)", $op,
        ['credentials' => creds($owner), 'allInScope' => true, 'delivery' => 'return'],
        'WrongParametersFault', ['parameter' => 'delivery']);
    expect_fault($client, $label, "$label: $op WrongParametersFault (a userId twice)", $op,
        ['credentials' => creds($sales), 'userId' => ['u-learner', 'u-learner'], 'delivery' => 'return'],
        'WrongParametersFault', ['parameter' => 'userId']);
    expect_fault($client, $label, "$label: $op AuthenticationFailedFault", $op,
        ['credentials' => creds($owner, 'wrong-password-123'), 'userId' => ['u-learner']], 'AuthenticationFailedFault');
}

ini_set('default_socket_timeout', '60');
if ($argc < 2) {
    fwrite(STDERR, "usage: php client.php ENDPOINT [ENDPOINT_FOR_SOAP12]\n");
    exit(2);
}
run_port('SOAP 1.1', $argv[1]);
run_port('SOAP 1.2', $argv[2] ?? $argv[1]);
echo "php SoapClient: $passed passed, $failed failed\n";
exit($failed ? 1 : 0);
