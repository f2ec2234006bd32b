import sys

import zeep
from zeep.wsse.username import UsernameToken

endpoint = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/soap"

# Credentials in the Body, as legacy LMS integrations send them.
client = zeep.Client(endpoint + "?wsdl")
ok = client.service.UpdateUserPassword(
    credentials={"accountUrl": "http://myaccount.ispringlearn.com",
                 "email": "admin@example.com", "password": "Admin-Demo-Pass-5820"},
    userId="u-engineer", password="Zeep-Example-Pass-4417!")
print("body credentials:", ok)

# The same call authenticated by a WS-Security UsernameToken (PasswordText): no
# credentials element; the account is the one whose URL is the request's Host.
client = zeep.Client(endpoint + "?wsdl", wsse=UsernameToken("admin@example.com", "Admin-Demo-Pass-5820"))
client.transport.session.headers["Host"] = "myaccount.ispringlearn.com"
ok = client.service.UpdateUserPassword(
    credentials=zeep.xsd.SkipValue, userId="u-engineer", password="Zeep-Wsse-Pass-5528!")
print("WS-Security:", ok)

# Faults arrive as zeep.exceptions.Fault; the detail element names the fault type.
try:
    client.service.UpdateUserPassword(
        credentials=zeep.xsd.SkipValue, userId="u-engineer", password="short")
except zeep.exceptions.Fault as fault:
    print("fault:", fault.message, fault.detail[0].tag)
