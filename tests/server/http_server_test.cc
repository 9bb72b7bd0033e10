// The HTTP layer on its own, with real sockets: many clients at once (whole and
// streamed answers), a client that leaves mid-stream (the handler's write fails, the
// server goes on), the body limit, the connection cap, and Stop() with connections
// open. Run under TSan in CI.
#include "server/http_server.h"

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace strata::server {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

struct Reply {
  int status = 0;
  std::string body;
  bool ok = false;
};

Reply Request(uint16_t port, const std::string& target, const std::string& body = "") {
  Reply reply;
  try {
    net::io_context io;
    tcp::socket socket(io);
    socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    http::request<http::string_body> req{body.empty() ? http::verb::get : http::verb::post, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.body() = body;
    req.prepare_payload();
    http::write(socket, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    reply = {static_cast<int>(res.result_int()), res.body(), true};
  } catch (const std::exception&) {
  }
  return reply;
}

// /stream: eight SSE events 2 ms apart; /whole: echoes the body. Counts failed writes.
struct Handler {
  std::atomic<int> failed_writes{0};
  void operator()(const HttpRequest& r, ResponseWriter& w) {
    if (r.path == "/stream") {
      if (!w.StartStream(200, "text/event-stream")) return;
      for (int i = 0; i < 8; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if (!w.Write("data: " + std::to_string(i) + "\n\n")) {
          ++failed_writes;
          return;
        }
      }
      w.Finish();
      return;
    }
    w.Send(200, "text/plain", r.method + " " + r.path + " " + r.body);
  }
};

TEST(HttpServer, ManyClientsAtOnceEachGetTheirWholeAnswer) {
  Handler handler;
  auto server = HttpServer::Start({.port = 0}, std::ref(handler));
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const uint16_t port = (*server)->port();
  std::vector<std::thread> clients;
  std::atomic<int> good{0};
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < 5; ++i) {
        const Reply a = Request(port, "/whole?x=1", "body" + std::to_string(c));
        const Reply b = Request(port, "/stream");
        std::string events;
        for (int k = 0; k < 8; ++k) events += "data: " + std::to_string(k) + "\n\n";
        if (a.ok && a.status == 200 && a.body == "POST /whole body" + std::to_string(c) && b.ok &&
            b.body == events) {
          ++good;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(good, 40);
}

TEST(HttpServer, AClientThatLeavesMidStreamFailsTheWriteAndTheServerGoesOn) {
  Handler handler;
  auto server = HttpServer::Start({.port = 0}, std::ref(handler));
  ASSERT_TRUE(server.ok());
  const uint16_t port = (*server)->port();
  {
    net::io_context io;
    tcp::socket socket(io);
    socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    const std::string req = "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
    net::write(socket, net::buffer(req));
    char first[64];
    socket.read_some(net::buffer(first));  // the headers and maybe an event
    socket.set_option(net::socket_base::linger(true, 0));  // reset, not a polite close
  }
  for (int i = 0; i < 200 && handler.failed_writes == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(handler.failed_writes, 1);
  EXPECT_EQ(Request(port, "/whole", "again").body, "POST /whole again");
}

TEST(HttpServer, BodiesOverTheLimitGet413AndConnectionsOverTheCap503) {
  Handler handler;
  auto limited = HttpServer::Start({.port = 0, .body_limit = 1000}, std::ref(handler));
  ASSERT_TRUE(limited.ok());
  const Reply big = Request((*limited)->port(), "/whole", std::string(5000, 'x'));
  EXPECT_EQ(big.status, 413);
  EXPECT_NE(big.body.find("--max-body"), std::string::npos);
  EXPECT_EQ(Request((*limited)->port(), "/whole", std::string(900, 'x')).status, 200);
  // One connection held open: the next one is turned away.
  auto server = HttpServer::Start({.port = 0, .max_connections = 1}, std::ref(handler));
  ASSERT_TRUE(server.ok());
  const uint16_t port = (*server)->port();
  net::io_context io;
  tcp::socket held(io);
  held.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(held.available(), 0u) << "the held connection was refused";
  EXPECT_EQ(Request(port, "/whole", "x").status, 503);
}

TEST(HttpServer, StopClosesOpenConnectionsAndAnAddressInUseIsAnError) {
  Handler handler;
  auto server = HttpServer::Start({.port = 0}, std::ref(handler));
  ASSERT_TRUE(server.ok());
  const uint16_t port = (*server)->port();
  auto taken = HttpServer::Start({.port = port}, std::ref(handler));
  ASSERT_FALSE(taken.ok());
  EXPECT_NE(taken.status().message().find("cannot listen on 127.0.0.1:" + std::to_string(port)),
            std::string::npos);
  net::io_context io;
  tcp::socket idle(io);
  idle.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  (*server)->Stop();  // returns although a client keeps its connection open
  EXPECT_FALSE(Request(port, "/whole", "x").ok);
  EXPECT_FALSE(HttpServer::Start({.host = "nope"}, std::ref(handler)).ok());
}

}  // namespace
}  // namespace strata::server
