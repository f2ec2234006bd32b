endpoint=${1:-http://127.0.0.1:8080/soap}
curl -s "$endpoint" \
  -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: "UpdateUserPassword"' \
  --data-binary @fixtures/requests/success.xml
