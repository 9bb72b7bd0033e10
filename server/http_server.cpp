#include "server/http_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <condition_variable>
#include <limits>
#include <list>
#include <mutex>

namespace strata::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

template <typename View>
std::string Str(View v) {
  return std::string(v.data(), v.size());
}

class SocketWriter : public ResponseWriter {
 public:
  SocketWriter(tcp::socket& socket, unsigned version, bool keep_alive)
      : socket_(socket), version_(version), keep_alive_(keep_alive) {}

  bool Send(int status, std::string_view content_type, std::string_view body) override {
    http::response<http::string_body> res{static_cast<http::status>(status), version_};
    res.set(http::field::server, "strata");
    res.set(http::field::content_type, std::string(content_type));
    res.keep_alive(keep_alive_);
    res.body() = std::string(body);
    res.prepare_payload();
    beast::error_code ec;
    http::write(socket_, res, ec);
    sent_ = true;
    return ok_ = !ec;
  }

  bool StartStream(int status, std::string_view content_type) override {
    http::response<http::empty_body> res{static_cast<http::status>(status), version_};
    res.set(http::field::server, "strata");
    res.set(http::field::content_type, std::string(content_type));
    res.set(http::field::cache_control, "no-cache");
    res.keep_alive(keep_alive_);
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    beast::error_code ec;
    http::write_header(socket_, sr, ec);
    sent_ = streaming_ = true;
    return ok_ = !ec;
  }

  bool Write(std::string_view data) override {
    if (!ok_ || data.empty()) return ok_;
    beast::error_code ec;
    net::write(socket_, http::make_chunk(net::buffer(data.data(), data.size())), ec);
    return ok_ = !ec;
  }

  bool Finish() override {
    if (!ok_) return false;
    beast::error_code ec;
    net::write(socket_, http::make_chunk_last(), ec);
    streaming_ = false;
    return ok_ = !ec;
  }

  bool ClientGone() override {
    if (!ok_) return true;
    char byte;
    const ssize_t n = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
  }

  bool sent() const { return sent_; }
  bool ok() const { return ok_ && !streaming_; }

 private:
  tcp::socket& socket_;
  unsigned version_;
  bool keep_alive_;
  bool sent_ = false, streaming_ = false, ok_ = true;
};

constexpr uint64_t kDrainLimit = 64ull << 20;
constexpr std::string_view kTooLarge =
    R"json({"error":{"message":"the request body is larger than the server accepts (--max-body)","type":"invalid_request_error"}})json";

void SendPlain(tcp::socket& socket, http::status status, std::string_view body) {
  http::response<http::string_body> res{status, 11};
  res.set(http::field::server, "strata");
  res.set(http::field::content_type, "application/json");
  res.keep_alive(false);
  res.body() = std::string(body);
  res.prepare_payload();
  beast::error_code ec;
  http::write(socket, res, ec);
}

}  // namespace

struct HttpServer::Impl {
  HttpOptions options;
  Handler handler;
  net::io_context io;
  tcp::acceptor acceptor{io};
  std::thread accept_thread;
  std::mutex mu;
  std::condition_variable idle;
  std::list<tcp::socket*> open;  // connections being served (to shut down on Stop)
  uint32_t active = 0;
  std::atomic<bool> stopping{false};

  void AcceptLoop() {
    while (!stopping) {
      auto socket = std::make_unique<tcp::socket>(io);
      beast::error_code ec;
      acceptor.accept(*socket, ec);
      if (stopping) break;
      if (ec) continue;
      std::unique_lock lock(mu);
      if (active >= options.max_connections) {
        lock.unlock();
        SendPlain(*socket, http::status::service_unavailable,
                  R"({"error":{"message":"too many connections","type":"overloaded_error"}})");
        continue;
      }
      ++active;
      std::thread(&Impl::Serve, this, std::move(socket)).detach();
    }
  }

  // Runs on a detached thread; Stop() waits for `active` to drop to 0, so the socket
  // (which refers to `io`) is destroyed before that, and nothing of Impl is touched after.
  void Serve(std::unique_ptr<tcp::socket> connection) {
    tcp::socket& socket = *connection;
    std::list<tcp::socket*>::iterator self;
    {
      std::lock_guard lock(mu);
      self = open.insert(open.end(), &socket);
    }
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      // Checked below, once the length is known. (Not boost::none: Boost 1.74 compares
      // the length with an empty optional and refuses every body.)
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      beast::error_code ec;
      http::read_header(socket, buffer, parser, ec);
      if (ec) break;  // closed, or not HTTP
      // A body over the limit gets 413. One of a known length is read and dropped
      // first (up to kDrainLimit), since a client still sending would see a reset
      // instead of the answer.
      const auto length = parser.content_length();
      if (length && *length > options.body_limit) {
        if (*length <= kDrainLimit) {
          // Read into one small buffer and drop: no allocation of the body's size.
          uint64_t left = *length - std::min<uint64_t>(*length, buffer.size());
          char scratch[64 << 10];
          while (left > 0 && !ec) {
            left -= std::min<uint64_t>(left, socket.read_some(net::buffer(scratch), ec));
          }
        }
        SendPlain(socket, http::status::payload_too_large, kTooLarge);
        break;
      }
      parser.body_limit(options.body_limit);
      http::read(socket, buffer, parser, ec);
      if (ec == http::error::body_limit) {
        SendPlain(socket, http::status::payload_too_large, kTooLarge);
        break;
      }
      if (ec) break;  // closed, or not HTTP
      const auto& req = parser.get();
      HttpRequest r;
      r.method = Str(req.method_string());
      const std::string target = Str(req.target());
      r.path = std::string(target.substr(0, target.find('?')));
      for (const auto& field : req) {
        std::string name = Str(field.name_string());
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        r.headers[name] = Str(field.value());
      }
      r.body = req.body();
      SocketWriter writer(socket, req.version(), req.keep_alive());
      handler(r, writer);
      if (!writer.sent()) {
        writer.Send(500, "application/json",
                    R"({"error":{"message":"no response","type":"api_error"}})");
      }
      if (!writer.ok() || !req.keep_alive() || stopping) break;
    }
    beast::error_code ec;
    socket.shutdown(tcp::socket::shutdown_both, ec);
    {
      std::lock_guard lock(mu);
      open.erase(self);
    }
    connection.reset();
    std::lock_guard lock(mu);
    --active;
    idle.notify_all();
  }
};

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpOptions& options, Handler handler) {
  auto server = std::unique_ptr<HttpServer>(new HttpServer());
  server->impl_ = std::make_unique<Impl>();
  Impl& impl = *server->impl_;
  impl.options = options;
  impl.handler = std::move(handler);
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(options.host, ec);
  if (ec) return Status::InvalidArgument("--host '" + options.host + "' is not an IP address");
  const tcp::endpoint endpoint(address, options.port);
  const std::string where = options.host + ":" + std::to_string(options.port);
  impl.acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl.acceptor.bind(endpoint, ec);
  if (!ec) impl.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Status::IOError("cannot listen on " + where + ": " + ec.message());
  server->port_ = impl.acceptor.local_endpoint().port();
  impl.accept_thread = std::thread(&Impl::AcceptLoop, &impl);
  return server;
}

void HttpServer::Stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  // shutdown() wakes the thread blocked in accept(); then every connection's socket.
  ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);
  if (impl_->accept_thread.joinable()) impl_->accept_thread.join();
  std::unique_lock lock(impl_->mu);
  for (tcp::socket* s : impl_->open) ::shutdown(s->native_handle(), SHUT_RDWR);
  impl_->idle.wait(lock, [&] { return impl_->active == 0; });
}

HttpServer::~HttpServer() { Stop(); }

}  // namespace strata::server
