// Interop check with JAX-WS (the RI, Debian's libjaxws-java) and classes that wsimport
// generated from the running service's WSDL (tests/interop/legacy_clients.sh runs wsimport on
// the live URL at run time, into a temporary directory, and compiles this file with them).
// Over the SOAP 1.1 and the SOAP 1.2 port it calls every operation of the WSDL
// (UpdateUserPassword, UpdateUserPasswords, GetUserPasswordStatus, ResetUserPasswords) through
// the generated UserPasswordPortType: success, a temporary password and what it forbids, an
// xsi:nil optional, a non-ASCII password, a mixed batch with per-item faults, the status fields
// (lockedUntil after a lockout too), resets by link (named users with delivery=return: each
// item's link and expiry or fault, the counts; a returned link's form fetched over HTTP, another
// link dead once its user's password changes; allInScope with delivery=notify; the whole call's
// WrongParametersFaults), and every typed fault as the generated *Fault_Exception
// whose getFaultInfo() bean carries code, parameter, violations, reason. Each port's address
// is read from the WSDL (and must be the endpoint); the calls go through a byte-for-byte TCP
// relay that records the exchange, so that after every call the request JAX-WS sent and the
// answer must be in the port's SOAP version: envelope namespace, request and response
// Content-Type, fault code (Client / Sender) and HTTP status (200; fault: 500 for SOAP 1.1,
// 400 for a SOAP 1.2 Sender fault).
//
// Usage: java -cp GENERATED_CLASSES:/usr/share/java/jaxws-rt.jar Client ENDPOINT [ENDPOINT_FOR_SOAP12]
//   (the service must run with --demo data; jaxws-rt.jar's manifest brings JAXB, SAAJ, ...)
// With a second endpoint the SOAP 1.2 port is exercised on that server, else both ports run
// on the same server one after the other: the client remembers every password it sets and
// checks the status relative to what it read before, so the runs do not clash.

import com.ispringlearn.go.services.api.soap.AuthenticationFailedFault;
import com.ispringlearn.go.services.api.soap.AuthenticationFailedFault_Exception;
import com.ispringlearn.go.services.api.soap.Credentials;
import com.ispringlearn.go.services.api.soap.Delivery;
import com.ispringlearn.go.services.api.soap.GetUserPasswordStatusRequest;
import com.ispringlearn.go.services.api.soap.GetUserPasswordStatusResult;
import com.ispringlearn.go.services.api.soap.ItemFault;
import com.ispringlearn.go.services.api.soap.ItemResult;
import com.ispringlearn.go.services.api.soap.ObjectFactory;
import com.ispringlearn.go.services.api.soap.PasswordItem;
import com.ispringlearn.go.services.api.soap.PermissionDeniedFault;
import com.ispringlearn.go.services.api.soap.PermissionDeniedFault_Exception;
import com.ispringlearn.go.services.api.soap.ResetItem;
import com.ispringlearn.go.services.api.soap.ResetUserPasswordsRequest;
import com.ispringlearn.go.services.api.soap.ResetUserPasswordsResult;
import com.ispringlearn.go.services.api.soap.ServerBusyFault;
import com.ispringlearn.go.services.api.soap.ServerBusyFault_Exception;
import com.ispringlearn.go.services.api.soap.UnknownUserFault;
import com.ispringlearn.go.services.api.soap.UnknownUserFault_Exception;
import com.ispringlearn.go.services.api.soap.UpdateUserPasswordRequest;
import com.ispringlearn.go.services.api.soap.UpdateUserPasswordResult;
import com.ispringlearn.go.services.api.soap.UpdateUserPasswordsRequest;
import com.ispringlearn.go.services.api.soap.UpdateUserPasswordsResult;
import com.ispringlearn.go.services.api.soap.UserPasswordPortType;
import com.ispringlearn.go.services.api.soap.UserPasswordService;
import com.ispringlearn.go.services.api.soap.UserStatus;
import com.ispringlearn.go.services.api.soap.WrongParametersFault;
import com.ispringlearn.go.services.api.soap.WrongParametersFault_Exception;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.xml.datatype.XMLGregorianCalendar;
import javax.xml.ws.BindingProvider;

public final class Client {
    static final String ACCOUNT = "http://myaccount.ispringlearn.com";
    static final String SOAP11 = "SOAP 1.1";
    static final String SOAP12 = "SOAP 1.2";
    static final String OWNER = "owner@example.com";
    static final String ADMIN = "admin@example.com";
    static final String SALES = "sales.admin@example.com";
    static final String EMEA = "emea.admin@example.com";
    static final String LEARNER2 = "learner2@example.com";
    static final Map<String, String> FAULTSTRINGS = Map.of(
            "WrongParametersFault", "Wrong parameters",
            "AuthenticationFailedFault", "Authorization failed",
            "UnknownUserFault", "Unknown user",
            "PermissionDeniedFault", "Permission denied");
    static final Map<String, String> CODES = Map.of(
            "WrongParametersFault", "WRONG_PARAMETERS",
            "AuthenticationFailedFault", "AUTHENTICATION_FAILED",
            "UnknownUserFault", "UNKNOWN_USER",
            "PermissionDeniedFault", "PERMISSION_DENIED");

    // The demo users this client signs in as (e-mail -> password); every password it sets is
    // recorded, so a later sign-in uses it.
    static final Map<String, String> passwords = new HashMap<>(Map.of(
            OWNER, "Owner-Demo-Pass-7341",
            ADMIN, "Admin-Demo-Pass-5820",
            SALES, "Sales-Demo-Pass-2468",
            EMEA, "Emea-Demo-Pass-1357",
            LEARNER2, "Learner2-Demo-Pass-7193"));
    static final ObjectFactory of = new ObjectFactory();
    static final SecureRandom random = new SecureRandom();
    static int passed;
    static int failed;

    interface Call<T> {
        T run() throws Exception;
    }

    static void check(String name, boolean ok, Object info) {
        if (ok) {
            passed++;
            System.out.println("ok   " + name);
        } else {
            failed++;
            System.out.println("FAIL " + name + " " + info);
        }
    }

    static String newPassword() {
        byte[] b = new byte[12];
        random.nextBytes(b);
        return "Jv-" + Base64.getUrlEncoder().withoutPadding().encodeToString(b) + "-7!";
    }

    static Credentials creds(String email, String password) {
        Credentials c = new Credentials();
        c.setAccountUrl(ACCOUNT);
        c.setEmail(email);
        c.setPassword(password);
        return c;
    }

    static Credentials creds(String email) {
        return creds(email, passwords.get(email));
    }

    static UpdateUserPasswordRequest update(Credentials c, String userId, String password) {
        UpdateUserPasswordRequest r = new UpdateUserPasswordRequest();
        r.setCredentials(c);
        r.setUserId(userId);
        r.setPassword(password);
        return r;
    }

    static PasswordItem item(String userId, String password) {
        PasswordItem i = new PasswordItem();
        i.setUserId(userId);
        i.setPassword(password);
        return i;
    }

    static UpdateUserPasswordsRequest batch(Credentials c, PasswordItem... items) {
        UpdateUserPasswordsRequest r = new UpdateUserPasswordsRequest();
        r.setCredentials(c);
        r.getItem().addAll(Arrays.asList(items));
        return r;
    }

    static ResetUserPasswordsRequest resetRequest(Credentials c, Delivery delivery, String... userIds) {
        ResetUserPasswordsRequest r = new ResetUserPasswordsRequest();
        r.setCredentials(c);
        r.getUserId().addAll(Arrays.asList(userIds));
        if (delivery != null) {
            r.setDelivery(of.createResetUserPasswordsRequestDelivery(delivery));
        }
        return r;
    }

    static ResetUserPasswordsRequest resetAllInScope(Credentials c, Delivery delivery) {
        ResetUserPasswordsRequest r = resetRequest(c, delivery);
        r.setAllInScope(true);
        return r;
    }

    // A plain HTTP GET (no SOAP): {status, media type, body}; 4xx and 5xx answers are read too.
    static Object[] httpGet(String url) {
        try {
            HttpURLConnection c = (HttpURLConnection) new URL(url).openConnection();
            c.setConnectTimeout(10000);
            c.setReadTimeout(30000);
            int status = c.getResponseCode();
            InputStream in = status >= 400 ? c.getErrorStream() : c.getInputStream();
            String body = in == null ? "" : new String(in.readAllBytes(), StandardCharsets.UTF_8);
            String type = c.getContentType();
            c.disconnect();
            return new Object[] {status, type == null ? null : type.split(";")[0].trim().toLowerCase(), body};
        } catch (Exception e) {
            return new Object[] {null, null, e.toString()};
        }
    }

    static GetUserPasswordStatusRequest statusRequest(Credentials c, String userId) {
        GetUserPasswordStatusRequest r = new GetUserPasswordStatusRequest();
        r.setCredentials(c);
        r.setUserId(userId);
        return r;
    }

    // ---------------------------------------------------------------------------------------
    // A TCP relay in front of the service: forwards bytes unchanged both ways and keeps the
    // bytes of both directions since the last reset() (calls are sequential).

    static final class Relay implements Runnable {
        final ServerSocket listener;
        final String host;
        final int port;
        final ByteArrayOutputStream sent = new ByteArrayOutputStream();
        final ByteArrayOutputStream received = new ByteArrayOutputStream();

        Relay(URI target) throws Exception {
            host = target.getHost();
            port = target.getPort() == -1 ? 80 : target.getPort();
            listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
            Thread t = new Thread(this, "relay");
            t.setDaemon(true);
            t.start();
        }

        public void run() {
            while (true) {
                try {
                    Socket client = listener.accept();
                    Socket upstream = new Socket(host, port);
                    pump(client.getInputStream(), upstream.getOutputStream(), sent, client, upstream);
                    pump(upstream.getInputStream(), client.getOutputStream(), received, client, upstream);
                } catch (Exception e) {
                    return;
                }
            }
        }

        void pump(InputStream in, OutputStream out, ByteArrayOutputStream record, Socket a, Socket b) {
            Thread t = new Thread(() -> {
                byte[] buf = new byte[8192];
                try {
                    for (int n; (n = in.read(buf)) > 0; ) {
                        synchronized (record) {
                            record.write(buf, 0, n);
                        }
                        out.write(buf, 0, n);
                        out.flush();
                    }
                } catch (Exception ignored) {
                    // the other side closed
                } finally {
                    try {
                        a.close();
                        b.close();
                    } catch (Exception ignored) {
                        // already closed
                    }
                }
            }, "relay-pump");
            t.setDaemon(true);
            t.start();
        }

        void reset() {
            synchronized (sent) {
                sent.reset();
            }
            synchronized (received) {
                received.reset();
            }
        }

        String sentText() {
            synchronized (sent) {
                return sent.toString(StandardCharsets.UTF_8);
            }
        }

        String receivedText() {
            synchronized (received) {
                return received.toString(StandardCharsets.UTF_8);
            }
        }
    }

    static String group(String regex, String text, int flags) {
        Matcher m = Pattern.compile(regex, flags).matcher(text == null ? "" : text);
        return m.find() ? m.group(1) : null;
    }

    static String mediaType(String http) {
        String head = http == null ? "" : http.split("\r\n\r\n", 2)[0];
        String v = group("^content-type:\\s*([^;\r\n]+)", head, Pattern.CASE_INSENSITIVE | Pattern.MULTILINE);
        return v == null ? null : v.trim().toLowerCase();
    }

    static Integer httpStatus(String http) {
        String v = group("^HTTP/\\S+\\s+(\\d{3})", http, 0);
        return v == null ? null : Integer.valueOf(v);
    }

    // The namespace of the Envelope element (its prefix's declaration on it).
    static String envelopeNamespace(String http) {
        Matcher m = Pattern.compile("<(?:([\\w.-]+):)?Envelope\\b([^>]*)>").matcher(http == null ? "" : http);
        if (!m.find()) {
            return null;
        }
        String prefix = m.group(1) == null ? "" : ":" + Pattern.quote(m.group(1));
        return group("\\sxmlns" + prefix + "\\s*=\\s*[\"']([^\"']*)[\"']", m.group(2), 0);
    }

    // The fault code's local name as sent: SOAP 1.1 faultcode, SOAP 1.2 Code/Value.
    static String faultCode(String http) {
        String v = group("<(?:[\\w.-]+:)?faultcode\\b[^>]*>([^<]*)<", http, 0);
        if (v == null) {
            v = group("<(?:[\\w.-]+:)?Code\\b[^>]*>\\s*<(?:[\\w.-]+:)?Value\\b[^>]*>([^<]*)<", http, 0);
        }
        return v == null ? null : v.trim().replaceAll("^.*:", "");
    }

    // ---------------------------------------------------------------------------------------

    final String label;
    final String endpoint;
    final String envelopeNs;
    final String media;
    final String clientCode;
    final int faultStatus;
    Relay relay;
    UserPasswordPortType port;

    Client(String label, String endpoint) {
        this.label = label;
        this.endpoint = endpoint;
        boolean v11 = label.equals(SOAP11);
        envelopeNs = v11 ? "http://schemas.xmlsoap.org/soap/envelope/" : "http://www.w3.org/2003/05/soap-envelope";
        media = v11 ? "text/xml" : "application/soap+xml";
        clientCode = v11 ? "Client" : "Sender";
        faultStatus = v11 ? 500 : 400;
    }

    String exchange() {
        return "\n  --> " + relay.sentText().replace("\r\n", "\n  --> ") + "\n  <-- "
                + relay.receivedText().replace("\r\n", "\n  <-- ");
    }

    void checkVersion(String name, int status) {
        String sent = relay.sentText();
        String got = relay.receivedText();
        List<Object> g = Arrays.asList(envelopeNamespace(sent), mediaType(sent), mediaType(got), httpStatus(got));
        List<Object> w = Arrays.asList(envelopeNs, media, media, status);
        check(name + ": sent and answered as " + label + " (HTTP " + status + ")", g.equals(w),
                "got " + g + ", want " + w);
    }

    <T> T callOk(String name, Call<T> call) {
        relay.reset();
        try {
            T result = call.run();
            checkVersion(name, 200);
            return result;
        } catch (Exception e) {
            check(name, false, "raised " + e + exchange());
            return null;
        }
    }

    // The detail element's local name and its children (name -> values) from a typed fault:
    // the generated exception classes and their getFaultInfo() beans (plain casts, so that a
    // JDK 11 compiles it too).
    static Map.Entry<String, Map<String, List<String>>> typedFault(Exception e) {
        Map<String, List<String>> f = new LinkedHashMap<>();
        String type;
        if (e instanceof WrongParametersFault_Exception) {
            WrongParametersFault x = ((WrongParametersFault_Exception) e).getFaultInfo();
            type = "WrongParametersFault";
            f.put("code", List.of(String.valueOf(x.getCode())));
            f.put("message", List.of(String.valueOf(x.getMessage())));
            f.put("parameter", List.of(String.valueOf(x.getParameter())));
            f.put("violation", List.copyOf(x.getViolation()));
        } else if (e instanceof AuthenticationFailedFault_Exception) {
            AuthenticationFailedFault x = ((AuthenticationFailedFault_Exception) e).getFaultInfo();
            type = "AuthenticationFailedFault";
            f.put("code", List.of(String.valueOf(x.getCode())));
            f.put("message", List.of(String.valueOf(x.getMessage())));
        } else if (e instanceof UnknownUserFault_Exception) {
            UnknownUserFault x = ((UnknownUserFault_Exception) e).getFaultInfo();
            type = "UnknownUserFault";
            f.put("code", List.of(String.valueOf(x.getCode())));
            f.put("message", List.of(String.valueOf(x.getMessage())));
        } else if (e instanceof PermissionDeniedFault_Exception) {
            PermissionDeniedFault x = ((PermissionDeniedFault_Exception) e).getFaultInfo();
            type = "PermissionDeniedFault";
            f.put("code", List.of(String.valueOf(x.getCode())));
            f.put("message", List.of(String.valueOf(x.getMessage())));
            f.put("reason", List.of(String.valueOf(x.getReason())));
        } else if (e instanceof ServerBusyFault_Exception) {
            ServerBusyFault x = ((ServerBusyFault_Exception) e).getFaultInfo();
            type = "ServerBusyFault";
            f.put("code", List.of(String.valueOf(x.getCode())));
            f.put("message", List.of(String.valueOf(x.getMessage())));
        } else {
            return null;
        }
        return Map.entry(type, f);
    }

    // Calls and expects the generated exception of fault `type`, whose getFaultInfo() has the
    // right code, a message, and each extra (name, value, name, value...) among its values.
    void expectFault(String name, Call<?> call, String type, String... extra) {
        relay.reset();
        Object result;
        try {
            result = call.run();
        } catch (Exception e) {
            checkVersion(name, faultStatus);
            Map.Entry<String, Map<String, List<String>>> typed = typedFault(e);
            if (typed == null) {
                check(name, false, "raised " + e + " (not a generated fault exception)" + exchange());
                return;
            }
            Map<String, List<String>> f = typed.getValue();
            String code = faultCode(relay.receivedText());
            boolean ok = typed.getKey().equals(type) && clientCode.equals(code)
                    && FAULTSTRINGS.get(type).equals(e.getMessage())
                    && f.get("code").equals(List.of(CODES.get(type)))
                    && !f.get("message").get(0).isEmpty() && !f.get("message").get(0).equals("null");
            for (int i = 0; i + 1 < extra.length; i += 2) {
                ok = ok && f.getOrDefault(extra[i], List.of()).contains(extra[i + 1]);
            }
            check(name, ok, e.getClass().getSimpleName() + " message=" + e.getMessage() + " code=" + code
                    + " faultInfo=" + f);
            return;
        }
        check(name, false, "no fault raised: " + result + exchange());
    }

    boolean setPassword(String name, UpdateUserPasswordRequest r, String email) {
        UpdateUserPasswordResult result = callOk(name, () -> port.updateUserPassword(r));
        boolean ok = result != null && result.isSuccess();
        check(name, ok, result);
        if (ok && email != null) {
            passwords.put(email, r.getPassword());
        }
        return ok;
    }

    GetUserPasswordStatusResult status(String name, String caller, String userId) {
        return callOk(name, () -> port.getUserPasswordStatus(statusRequest(creds(caller), userId)));
    }

    static String show(GetUserPasswordStatusResult s) {
        if (s == null) {
            return "null";
        }
        return "{userId=" + s.getUserId() + " status=" + s.getStatus() + " externallyManaged=" + s.isExternallyManaged()
                + " passwordChangedAt=" + s.getPasswordChangedAt() + " temporary=" + s.isTemporary()
                + " credentialVersion=" + s.getCredentialVersion() + " resetPending=" + s.isResetPending()
                + " lockedUntil=" + s.getLockedUntil() + "}";
    }

    static String show(ItemResult i) {
        if (i == null) {
            return "null";
        }
        ItemFault f = i.getFault();
        return "{userId=" + i.getUserId() + " success=" + i.isSuccess() + (f == null ? "" : " fault={type=" + f.getType()
                + " code=" + f.getCode() + " message=" + f.getMessage() + " parameter=" + f.getParameter()
                + " violation=" + f.getViolation() + " reason=" + f.getReason() + "}") + "}";
    }

    static String show(ResetItem i) {
        if (i == null) {
            return "null";
        }
        ItemFault f = i.getFault();
        return "{userId=" + i.getUserId() + " success=" + i.isSuccess() + " expiresAt=" + i.getExpiresAt() + " link="
                + i.getLink() + (f == null ? "" : " fault={type=" + f.getType() + " code=" + f.getCode() + " message="
                + f.getMessage() + " reason=" + f.getReason() + "}") + "}";
    }

    static String show(ResetUserPasswordsResult r) {
        if (r == null) {
            return "null";
        }
        List<String> items = new ArrayList<>();
        r.getItem().forEach(i -> items.add(show(i)));
        return "{items=" + items + " reset=" + r.getReset() + " skipped=" + r.getSkipped() + "}";
    }

    static ResetItem itemOf(ResetUserPasswordsResult r, String userId) {
        if (r == null) {
            return null;
        }
        return r.getItem().stream().filter(i -> userId.equals(i.getUserId())).findFirst().orElse(null);
    }

    static ItemResult itemOf(UpdateUserPasswordsResult r, String userId) {
        if (r == null) {
            return null;
        }
        return r.getItem().stream().filter(i -> userId.equals(i.getUserId())).findFirst().orElse(null);
    }

    void run() throws Exception {
        String wsdl = endpoint + "?wsdl";
        UserPasswordService service;
        try {
            service = new UserPasswordService(new URL(wsdl));
            port = label.equals(SOAP11) ? service.getUserPasswordSoap11() : service.getUserPasswordSoap12();
        } catch (Exception e) {
            check(label + ": JAX-WS loads " + wsdl, false, e);
            return;
        }
        String portName = label.equals(SOAP11) ? "UserPasswordSoap11" : "UserPasswordSoap12";
        Map<String, Object> ctx = ((BindingProvider) port).getRequestContext();
        Object address = ctx.get(BindingProvider.ENDPOINT_ADDRESS_PROPERTY);
        check(label + ": WSDL port " + portName + " has address " + endpoint, endpoint.equals(address), address);
        ctx.put("com.sun.xml.ws.connect.timeout", 10000);
        ctx.put("com.sun.xml.ws.request.timeout", 60000);
        relay = new Relay(URI.create(endpoint));
        URI e = URI.create(endpoint);
        ctx.put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY,
                new URI("http", null, "127.0.0.1", relay.listener.getLocalPort(), e.getPath(), e.getQuery(), null).toString());

        // --- UpdateUserPassword and GetUserPasswordStatus: success --------------------------
        GetUserPasswordStatusResult before = status(label + ": GetUserPasswordStatus u-learner (before)", SALES, "u-learner");
        setPassword(label + ": UpdateUserPassword success", update(creds(SALES), "u-learner", newPassword()), null);
        String p = newPassword();
        UpdateUserPasswordRequest r = update(creds(SALES), "u-learner", p);
        r.setPasswordConfirm(of.createUpdateUserPasswordRequestPasswordConfirm(p));
        r.setTemporary(of.createUpdateUserPasswordRequestTemporary(false));
        setPassword(label + ": UpdateUserPassword success with passwordConfirm and temporary=false", r, null);
        r = update(creds(SALES), "u-learner", newPassword());
        r.setPasswordConfirm(of.createUpdateUserPasswordRequestPasswordConfirm(null));
        setPassword(label + ": UpdateUserPassword success with passwordConfirm xsi:nil", r, null);
        check(label + ": JAX-WS sent passwordConfirm as xsi:nil",
                Pattern.compile("<(?:[\\w.-]+:)?passwordConfirm\\b[^>]*:nil=\"true\"").matcher(relay.sentText()).find(),
                exchange());
        GetUserPasswordStatusResult after = status(label + ": GetUserPasswordStatus u-learner", SALES, "u-learner");
        if (before != null && after != null) {
            XMLGregorianCalendar at = after.getPasswordChangedAt();
            boolean ok = "u-learner".equals(after.getUserId()) && after.getStatus() == UserStatus.ACTIVE
                    && !after.isExternallyManaged() && !after.isTemporary() && !after.isResetPending()
                    && after.getLockedUntil() == null
                    && after.getCredentialVersion() == before.getCredentialVersion() + 3
                    && at != null && at.getTimezone() == 0
                    && at.toGregorianCalendar().compareTo(before.getPasswordChangedAt().toGregorianCalendar()) >= 0;
            check(label + ": GetUserPasswordStatus fields (active, not external, not temporary, version +3, "
                    + "passwordChangedAt UTC)", ok, "before=" + show(before) + " after=" + show(after));
        }
        GetUserPasswordStatusResult sso = status(label + ": GetUserPasswordStatus u-sso", OWNER, "u-sso");
        check(label + ": GetUserPasswordStatus u-sso is externally managed",
                sso != null && sso.isExternallyManaged() && sso.getStatus() == UserStatus.ACTIVE, show(sso));
        GetUserPasswordStatusResult former = status(label + ": GetUserPasswordStatus u-former", OWNER, "u-former");
        check(label + ": GetUserPasswordStatus u-former is deactivated",
                former != null && former.getStatus() == UserStatus.DEACTIVATED, show(former));

        // --- UpdateUserPassword: every typed fault ------------------------------------------
        String op = label + ": UpdateUserPassword ";
        expectFault(op + "WrongParametersFault (policy violations)",
                () -> port.updateUserPassword(update(creds(OWNER), "u-learner", "learner")),
                "WrongParametersFault", "parameter", "password", "violation", "TOO_SHORT", "violation", "CONTAINS_EMAIL");
        expectFault(op + "WrongParametersFault (single violation)",
                () -> port.updateUserPassword(update(creds(OWNER), "u-learner", "Xq7#z")),
                "WrongParametersFault", "parameter", "password", "violation", "TOO_SHORT");
        String q = newPassword();
        UpdateUserPasswordRequest mismatch = update(creds(OWNER), "u-learner", q);
        mismatch.setPasswordConfirm(of.createUpdateUserPasswordRequestPasswordConfirm(q + "x"));
        expectFault(op + "WrongParametersFault (passwordConfirm differs)", () -> port.updateUserPassword(mismatch),
                "WrongParametersFault", "parameter", "passwordConfirm", "violation", "CONFIRM_MISMATCH");
        expectFault(op + "AuthenticationFailedFault",
                () -> port.updateUserPassword(update(creds(OWNER, "wrong-password-123"), "u-learner", newPassword())),
                "AuthenticationFailedFault");
        expectFault(op + "UnknownUserFault",
                () -> port.updateUserPassword(update(creds(OWNER), "u-nobody", newPassword())), "UnknownUserFault");
        String[][] denied = {{SALES, "u-engineer", "NOT_IN_SCOPE"}, {ADMIN, "u-owner", "OUTRANKS_CALLER"},
                {OWNER, "u-former", "USER_DEACTIVATED"}, {OWNER, "u-sso", "EXTERNALLY_MANAGED"}};
        for (String[] d : denied) {
            expectFault(op + "PermissionDeniedFault " + d[2],
                    () -> port.updateUserPassword(update(creds(d[0]), d[1], newPassword())),
                    "PermissionDeniedFault", "reason", d[2]);
        }

        // --- temporary=true: the user must change it, and may do nothing else until then ----
        r = update(creds(SALES), "u-emea-admin", newPassword());
        r.setTemporary(of.createUpdateUserPasswordRequestTemporary(true));
        setPassword(label + ": UpdateUserPassword temporary=true (emea.admin by sales.admin)", r, EMEA);
        GetUserPasswordStatusResult st = status(label + ": GetUserPasswordStatus u-emea-admin", SALES, "u-emea-admin");
        check(label + ": GetUserPasswordStatus shows temporary=true", st != null && st.isTemporary(), show(st));
        expectFault(op + "PermissionDeniedFault PASSWORD_CHANGE_REQUIRED",
                () -> port.updateUserPassword(update(creds(EMEA), "u-learner", newPassword())),
                "PermissionDeniedFault", "reason", "PASSWORD_CHANGE_REQUIRED");
        st = status(label + ": GetUserPasswordStatus own status while temporary", EMEA, "u-emea-admin");
        check(label + ": own status while temporary says temporary=true", st != null && st.isTemporary(), show(st));
        // A non-ASCII password (UTF-8 on the wire), then used to sign in.
        r = update(creds(EMEA), "u-emea-admin", newPassword() + "\u00dcn\u00ef-\u5bc6\u7801-\u20ac");
        r.setTemporary(of.createUpdateUserPasswordRequestTemporary(true));
        setPassword(label + ": UpdateUserPassword self-change to a non-ASCII password (temporary=true ignored)", r, EMEA);
        st = status(label + ": GetUserPasswordStatus signed in with the non-ASCII password", EMEA, "u-emea-admin");
        check(label + ": self-change cleared temporary", st != null && !st.isTemporary(), show(st));

        // --- UpdateUserPasswords: a mixed batch, then whole-call faults ---------------------
        op = label + ": UpdateUserPasswords ";
        String b = newPassword();
        PasswordItem confirmed = item("u-learner", b);
        confirmed.setPasswordConfirm(of.createPasswordItemPasswordConfirm(b));
        PasswordItem temporary = item("u-trainer", newPassword());
        temporary.setTemporary(of.createPasswordItemTemporary(true));
        UpdateUserPasswordsRequest mixed = batch(creds(SALES), confirmed, temporary, item("u-engineer", newPassword()),
                item("u-nobody", newPassword()), item("u-learner2", "learner2"), item("u-former", newPassword()));
        UpdateUserPasswordsResult result = callOk(op + "mixed batch", () -> port.updateUserPasswords(mixed));
        List<String> order = new ArrayList<>();
        if (result != null) {
            result.getItem().forEach(i -> order.add(i.getUserId()));
        }
        check(op + "answers one item per request item, in order",
                order.equals(List.of("u-learner", "u-trainer", "u-engineer", "u-nobody", "u-learner2", "u-former")), order);
        for (String u : List.of("u-learner", "u-trainer")) {
            ItemResult i = itemOf(result, u);
            check(op + "item " + u + " success", i != null && i.isSuccess() && i.getFault() == null, show(i));
        }
        String[][] itemFaults = {{"u-engineer", "PermissionDeniedFault", "PERMISSION_DENIED", "NOT_IN_SCOPE"},
                {"u-nobody", "UnknownUserFault", "UNKNOWN_USER", null},
                {"u-learner2", "WrongParametersFault", "WRONG_PARAMETERS", "TOO_SHORT"},
                {"u-former", "PermissionDeniedFault", "PERMISSION_DENIED", "USER_DEACTIVATED"}};
        for (String[] w : itemFaults) {
            ItemResult i = itemOf(result, w[0]);
            ItemFault f = i == null ? null : i.getFault();
            boolean ok = i != null && !i.isSuccess() && f != null && w[1].equals(f.getType()) && w[2].equals(f.getCode())
                    && f.getMessage() != null && !f.getMessage().isEmpty();
            if (w[1].equals("PermissionDeniedFault")) {
                ok = ok && w[3].equals(f.getReason());
            } else if (w[1].equals("WrongParametersFault")) {
                ok = ok && "password".equals(f.getParameter()) && f.getViolation().contains("TOO_SHORT")
                        && f.getViolation().contains("CONTAINS_EMAIL");
            }
            check(op + "item " + w[0] + " fault " + w[1] + (w[3] == null ? "" : " " + w[3]), ok, show(i));
        }
        st = status(label + ": GetUserPasswordStatus u-trainer after batch", SALES, "u-trainer");
        check(label + ": batch item temporary=true is reported", st != null && st.isTemporary(), show(st));
        UpdateUserPasswordsResult single = callOk(op + "one item",
                () -> port.updateUserPasswords(batch(creds(SALES), item("u-learner", newPassword()))));
        ItemResult one = itemOf(single, "u-learner");
        check(op + "one item success", one != null && one.isSuccess() && single.getItem().size() == 1, show(one));
        expectFault(op + "AuthenticationFailedFault",
                () -> port.updateUserPasswords(batch(creds(OWNER, "wrong-password-123"), item("u-learner", newPassword()))),
                "AuthenticationFailedFault");
        expectFault(op + "WrongParametersFault (userId twice)",
                () -> port.updateUserPasswords(batch(creds(SALES), item("u-learner", newPassword()),
                        item("u-learner", newPassword()))),
                "WrongParametersFault", "parameter", "item/userId");

        // --- lockout: 10 failed sign-ins lock the (account, e-mail) pair; the status shows it -
        List<String> got = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            try {
                port.getUserPasswordStatus(statusRequest(creds(LEARNER2, "wrong-password-123"), "u-learner2"));
                got.add("no fault");
            } catch (Exception x) {
                Map.Entry<String, Map<String, List<String>>> typed = typedFault(x);
                got.add(typed == null ? x.toString() : typed.getKey());
            }
        }
        check(label + ": 10 failed sign-ins of learner2: AuthenticationFailedFault each",
                got.equals(Collections.nCopies(10, "AuthenticationFailedFault")), got);
        expectFault(label + ": GetUserPasswordStatus AuthenticationFailedFault with the right password while locked",
                () -> port.getUserPasswordStatus(statusRequest(creds(LEARNER2), "u-learner2")), "AuthenticationFailedFault");
        st = status(label + ": GetUserPasswordStatus u-learner2 while locked", OWNER, "u-learner2");
        XMLGregorianCalendar until = st == null ? null : st.getLockedUntil();
        check(label + ": GetUserPasswordStatus lockedUntil is a UTC time in the future", until != null
                && until.getTimezone() == 0 && until.toGregorianCalendar().getTimeInMillis() > System.currentTimeMillis(),
                show(st));

        // --- GetUserPasswordStatus: typed faults --------------------------------------------
        op = label + ": GetUserPasswordStatus ";
        expectFault(op + "AuthenticationFailedFault",
                () -> port.getUserPasswordStatus(statusRequest(creds(OWNER, "wrong-password-123"), "u-learner")),
                "AuthenticationFailedFault");
        expectFault(op + "UnknownUserFault",
                () -> port.getUserPasswordStatus(statusRequest(creds(OWNER), "u-nobody")), "UnknownUserFault");
        expectFault(op + "PermissionDeniedFault NOT_IN_SCOPE",
                () -> port.getUserPasswordStatus(statusRequest(creds(SALES), "u-engineer")),
                "PermissionDeniedFault", "reason", "NOT_IN_SCOPE");
        expectFault(op + "WrongParametersFault (blank userId)",
                () -> port.getUserPasswordStatus(statusRequest(creds(SALES), " ")),
                "WrongParametersFault", "parameter", "userId");

        resets();
    }

    // ResetUserPasswords: links, never a password; the old password works until one is used.
    // Last, so that no earlier check meets a pending link; no link is spent (u-learner's dies
    // with its next password change).
    void resets() {
        String op = label + ": ResetUserPasswords ";
        // A link's origin is the request's: the relay's address, where JAX-WS sent the call.
        String origin = "http://127.0.0.1:" + relay.listener.getLocalPort();
        List<String> named = List.of("u-trainer", "u-learner", "u-engineer", "u-former");
        ResetUserPasswordsResult result = callOk(op + "(return) for four named users",
                () -> port.resetUserPasswords(resetRequest(creds(SALES), Delivery.RETURN, named.toArray(new String[0]))));
        List<String> order = new ArrayList<>();
        if (result != null) {
            result.getItem().forEach(i -> order.add(i.getUserId()));
        }
        check(op + "(return) answers one item per named user, in order", order.equals(named), show(result));
        check(op + "(return) counts reset=2 skipped=2",
                result != null && result.getReset() == 2 && result.getSkipped() == 2, show(result));
        Map<String, String> links = new HashMap<>();
        long now = System.currentTimeMillis();
        for (String u : List.of("u-trainer", "u-learner")) {
            ResetItem i = itemOf(result, u);
            XMLGregorianCalendar at = i == null ? null : i.getExpiresAt();
            // expiresAt: after now, within the contract's longest reset-ttl (7 days).
            boolean ok = i != null && i.isSuccess() && i.getFault() == null && i.getLink() != null
                    && i.getLink().matches(Pattern.quote(origin) + "/reset/[A-Za-z0-9_-]{22,}")
                    && at != null && at.getTimezone() == 0 && at.toGregorianCalendar().getTimeInMillis() > now
                    && at.toGregorianCalendar().getTimeInMillis() <= now + 7L * 86400 * 1000;
            check(op + "item " + u + " success, link " + origin + "/reset/TOKEN, expiresAt a UTC time ahead", ok,
                    show(i));
            if (ok) {
                links.put(u, i.getLink());
            }
        }
        for (String[] w : new String[][] {{"u-engineer", "NOT_IN_SCOPE"}, {"u-former", "USER_DEACTIVATED"}}) {
            ResetItem i = itemOf(result, w[0]);
            ItemFault f = i == null ? null : i.getFault();
            check(op + "item " + w[0] + " fault PermissionDeniedFault " + w[1] + ", no link", i != null && !i.isSuccess()
                    && i.getLink() == null && i.getExpiresAt() == null && f != null
                    && "PermissionDeniedFault".equals(f.getType()) && "PERMISSION_DENIED".equals(f.getCode())
                    && w[1].equals(f.getReason()) && f.getMessage() != null && !f.getMessage().isEmpty(), show(i));
        }
        GetUserPasswordStatusResult st = status(label + ": GetUserPasswordStatus u-learner with a link pending", SALES,
                "u-learner");
        check(label + ": GetUserPasswordStatus shows resetPending=true", st != null && st.isResetPending(), show(st));

        // The link, as the user opens it: the form.
        if (links.containsKey("u-trainer")) {
            Object[] got = httpGet(links.get("u-trainer"));
            String page = (String) got[2];
            boolean ok = Integer.valueOf(200).equals(got[0]) && "text/html".equals(got[1])
                    && Pattern.compile("<form\\b[^>]*\\bmethod=\"post\"", Pattern.CASE_INSENSITIVE).matcher(page).find()
                    && Pattern.compile("<input\\b[^>]*\\bname=\"password\"[^>]*\\btype=\"password\"").matcher(page).find()
                    && Pattern.compile("<input\\b[^>]*\\bname=\"passwordConfirm\"[^>]*\\btype=\"password\"").matcher(page)
                    .find();
            check(label + ": GET the returned link: 200, the form (password, passwordConfirm)", ok,
                    "HTTP " + got[0] + " " + got[1] + " " + page.substring(0, Math.min(300, page.length())));
        }
        // A link dies when its user's password changes by any path.
        if (links.containsKey("u-learner")) {
            setPassword(label + ": UpdateUserPassword u-learner while its link is pending",
                    update(creds(SALES), "u-learner", newPassword()), null);
            Object[] got = httpGet(links.get("u-learner"));
            check(label + ": GET u-learner's link after its password changed: 410",
                    Integer.valueOf(410).equals(got[0]) && "text/html".equals(got[1]), "HTTP " + got[0] + " " + got[1]);
        }

        // allInScope with delivery=notify: the d-emea admin's reach but itself is u-learner (reset,
        // its link sent to the user only) and u-trainer, u-former, u-sso (skipped); only those are listed.
        ResetUserPasswordsResult all = callOk(op + "allInScope (notify)",
                () -> port.resetUserPasswords(resetAllInScope(creds(EMEA), Delivery.NOTIFY)));
        List<String> got = new ArrayList<>();
        if (all != null) {
            for (ResetItem i : all.getItem()) {
                ItemFault f = i.getFault();
                got.add(i.getUserId() + " " + i.isSuccess() + " " + i.getLink() + " "
                        + (f == null ? null : f.getType() + " " + f.getReason()));
            }
        }
        check(op + "allInScope lists only the skipped users, with their fault and no link", got.equals(List.of(
                "u-trainer false null PermissionDeniedFault OUTRANKS_CALLER",
                "u-former false null PermissionDeniedFault USER_DEACTIVATED",
                "u-sso false null PermissionDeniedFault EXTERNALLY_MANAGED")), show(all));
        check(op + "allInScope counts reset=1 skipped=3", all != null && all.getReset() == 1 && all.getSkipped() == 3,
                show(all));
        st = status(label + ": GetUserPasswordStatus u-learner after allInScope", SALES, "u-learner");
        check(label + ": allInScope left u-learner a pending link", st != null && st.isResetPending(), show(st));

        // Whole-call faults: decided before anyone is reset. JAXB sends both userId and
        // allInScope when both are set (the schema's xs:choice is not enforced when marshalling).
        expectFault(op + "WrongParametersFault (allInScope, delivery=return)",
                () -> port.resetUserPasswords(resetAllInScope(creds(OWNER), Delivery.RETURN)),
                "WrongParametersFault", "parameter", "delivery");
        ResetUserPasswordsRequest both = resetAllInScope(creds(SALES), Delivery.RETURN);
        both.getUserId().add("u-learner");
        expectFault(op + "WrongParametersFault (userId and allInScope)", () -> port.resetUserPasswords(both),
                "WrongParametersFault", "parameter", "userId");
        check(op + "that request held both userId and allInScope",
                Pattern.compile("<(?:[\\w.-]+:)?userId>u-learner<").matcher(relay.sentText()).find()
                        && Pattern.compile("<(?:[\\w.-]+:)?allInScope>true<").matcher(relay.sentText()).find(),
                exchange());
        expectFault(op + "WrongParametersFault (a userId twice)",
                () -> port.resetUserPasswords(resetRequest(creds(SALES), Delivery.RETURN, "u-learner", "u-learner")),
                "WrongParametersFault", "parameter", "userId");
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: java Client ENDPOINT [ENDPOINT_FOR_SOAP12]");
            System.exit(2);
        }
        new Client(SOAP11, args[0]).run();
        new Client(SOAP12, args.length > 1 ? args[1] : args[0]).run();
        System.out.println("JAX-WS wsimport: " + passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
