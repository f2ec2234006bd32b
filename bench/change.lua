-- wrk script: successful changes. The account admin sets the password of a different
-- bench user on every request, each time to a fresh random password.
local users = tonumber(os.getenv("BENCH_USERS") or "200")
local n = 0
math.randomseed(os.time())

local function random_password()
  local chars = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
  local t = {}
  for i = 1, 16 do
    local k = math.random(1, #chars)
    t[i] = chars:sub(k, k)
  end
  return "Lb-" .. table.concat(t) .. "-7!"
end

request = function()
  n = n + 1
  local user = string.format("u-%04d", (n + math.random(0, users)) % users)
  local body = [[<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns="http://ispringlearn.com/go/services/api/soap"><SOAP-ENV:Body><UpdateUserPasswordRequest><credentials><accountUrl>http://bench.example.com</accountUrl><email>admin@bench.example.com</email><password>Bench-Admin-Pass-5820</password></credentials><userId>]] .. user .. [[</userId><password>]] .. random_password() .. [[</password></UpdateUserPasswordRequest></SOAP-ENV:Body></SOAP-ENV:Envelope>]]
  return wrk.format("POST", "/soap", {["Content-Type"] = "text/xml; charset=utf-8"}, body)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.1f p50_ms=%.2f p99_ms=%.2f requests=%d errors_status=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests, summary.errors.status))
end
