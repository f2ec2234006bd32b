endpoint=${1:-http://127.0.0.1:8080/soap}
curl -s "$endpoint" \
  -H 'Host: myaccount.ispringlearn.com' \
  -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: "UpdateUserPassword"' \
  --data-binary @docs/integrating/wsse-request.xml
