-- wrk script: a call refused before any hashing (WrongParametersFault: userId missing).
wrk.method = "POST"
wrk.path = "/soap"
wrk.headers["Content-Type"] = "text/xml; charset=utf-8"
wrk.body = [[<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns="http://ispringlearn.com/go/services/api/soap"><SOAP-ENV:Body><UpdateUserPasswordRequest><credentials><accountUrl>http://bench.example.com</accountUrl><email>admin@bench.example.com</email><password>Bench-Admin-Pass-5820</password></credentials><password>Lb-abcdefghijkmnop-7!</password></UpdateUserPasswordRequest></SOAP-ENV:Body></SOAP-ENV:Envelope>]]

done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.1f p50_ms=%.2f p99_ms=%.2f requests=%d non2xx_expected=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests, summary.errors.status))
end
