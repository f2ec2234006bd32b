endpoint=${1:-http://127.0.0.1:8080/soap}
soap() {  # soap OPERATION BODY: one SOAP 1.1 call, its answer on stdout
  curl -s "$endpoint" -H 'Content-Type: text/xml; charset=utf-8' -H "SOAPAction: \"$1\"" \
    --data-binary "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\"
      xmlns=\"http://ispringlearn.com/go/services/api/soap\"><SOAP-ENV:Body>$2</SOAP-ENV:Body></SOAP-ENV:Envelope>"
  echo
}
credentials='<credentials><accountUrl>http://myaccount.ispringlearn.com</accountUrl>
  <email>admin@example.com</email><password>Admin-Demo-Pass-5820</password></credentials>'

# A temporary password: u-learner2 must change it before doing anything else.
soap UpdateUserPassword "<UpdateUserPasswordRequest>$credentials<userId>u-learner2</userId>
  <password>Temp-Pass-Quartz-93</password><temporary>true</temporary></UpdateUserPasswordRequest>"

# Two passwords with one sign-in: each item succeeds or fails on its own.
soap UpdateUserPasswords "<UpdateUserPasswordsRequest>$credentials
  <item><userId>u-engineer</userId><password>Batch-Pass-Violet-41</password></item>
  <item><userId>u-owner</userId><password>Batch-Pass-Amber-41</password></item>
</UpdateUserPasswordsRequest>"

# What a helpdesk sees: status, temporary, credential version, a lock if any.
soap GetUserPasswordStatus "<GetUserPasswordStatusRequest>$credentials<userId>u-learner2</userId>
</GetUserPasswordStatusRequest>"

# One-time reset links instead of passwords; delivery=return hands them to the caller.
soap ResetUserPasswords "<ResetUserPasswordsRequest>$credentials<userId>u-trainer</userId>
  <delivery>return</delivery></ResetUserPasswordsRequest>"
