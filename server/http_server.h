// A small HTTP/1.1 server on Boost.Beast: one thread accepts, each connection gets a
// thread of its own (at most `max_connections`; more get 503 and are closed), requests
// are read whole (bodies above `body_limit` get 413 without being read) and handed to
// one handler, which answers through a ResponseWriter: at once, or streamed in chunks
// (server-sent events). A write that fails means the client went away; the writer
// reports it so the handler can stop generating. Keep-alive is honoured.
// Thread-safe: the handler runs on many connection threads at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "util/status.h"

namespace strata::server {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target without its query string
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // A whole response. False: the client is gone.
  virtual bool Send(int status, std::string_view content_type, std::string_view body) = 0;
  // Starts a chunked response (text/event-stream); then Write each piece and Finish.
  virtual bool StartStream(int status, std::string_view content_type) = 0;
  virtual bool Write(std::string_view data) = 0;
  virtual bool Finish() = 0;
  // Whether the client has closed its side (checked without blocking), so a whole
  // response that nobody will read can stop being computed.
  virtual bool ClientGone() = 0;
};

struct HttpOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port (see HttpServer::port)
  uint64_t body_limit = 8ull << 20;
  uint32_t max_connections = 64;
};

class HttpServer {
 public:
  using Handler = std::function<void(const HttpRequest&, ResponseWriter&)>;

  // Binds and starts accepting. Errors: an address that does not parse or cannot be
  // bound (in use, no permission), naming it.
  static Result<std::unique_ptr<HttpServer>> Start(const HttpOptions& options, Handler handler);
  ~HttpServer();  // Stop()

  uint16_t port() const { return port_; }
  // Stops accepting, closes every connection, and waits for their threads.
  void Stop();

 private:
  struct Impl;
  HttpServer() = default;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace strata::server
