// Test support: a minimal HTTP/1.1 client over a plain socket, for scraping
// a node's /metrics (and sending it requests no scraper would).
#pragma once

#include <map>
#include <string>

#include "common/status.h"

namespace txc::testing {

struct HttpResponse {
  int status = 0;  // e.g. 200
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// Sends `raw` (a whole request, as bytes) to 127.0.0.1:port and reads the
// answer until the server closes the connection or `timeout_ms` passes.
// Send "Connection: close" in `raw` to have the server close after one answer.
Result<HttpResponse> HttpExchange(int port, const std::string& raw, int timeout_ms = 5000);

// GET `path` with "Connection: close".
Result<HttpResponse> HttpGet(int port, const std::string& path, int timeout_ms = 5000);

// Parses one response (status line, headers, a Content-Length body).
Result<HttpResponse> ParseHttpResponse(const std::string& bytes);

}  // namespace txc::testing
