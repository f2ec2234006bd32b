base=${1:-http://127.0.0.1:8080}
account='X-Account-Url: http://myaccount.ispringlearn.com'

# An administrator sets a password (HTTP Basic: e-mail:password).
curl -s -X PATCH "$base/api/users/u-trainer/password" -u admin@example.com:Admin-Demo-Pass-5820 \
  -H "$account" -H 'Content-Type: application/json' -d '{"password": "Rest-Pass-Cobalt-62"}'
echo
# A user changes their own, with the current password instead of Authorization.
curl -s -X PATCH "$base/api/users/u-learner/password" -H "$account" \
  -H 'Content-Type: application/json' \
  -d '{"password": "Rest-Pass-Maple-62", "currentPassword": "Learner-Demo-Pass-4826"}'
echo
# The status, as JSON.
curl -s "$base/api/users/u-trainer/password" -u admin@example.com:Admin-Demo-Pass-5820 -H "$account"
echo
# A batch; a refusal is an RFC 9457 problem (here, for the item that names the owner).
curl -s -X POST "$base/api/passwords" -u admin@example.com:Admin-Demo-Pass-5820 -H "$account" \
  -H 'Content-Type: application/json' \
  -d '{"items": [{"userId": "u-help", "password": "Rest-Pass-Juniper-62"},
                 {"userId": "u-owner", "password": "Rest-Pass-Saffron-62"}]}'
echo
# A reset link returned to the caller (delivery=return), used by an LMS's own form.
link=$(curl -s -X POST "$base/api/password-resets" -u admin@example.com:Admin-Demo-Pass-5820 \
  -H "$account" -H 'Content-Type: application/json' \
  -d '{"userIds": ["u-engineer"], "delivery": "return"}' | sed -n 's/.*"link":"\([^"]*\)".*/\1/p')
curl -s -X POST "$base/api/password-resets/${link##*/}" -H 'Content-Type: application/json' \
  -d '{"password": "Rest-Pass-Harbor-62"}'
echo
