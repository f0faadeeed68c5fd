// forkscope serve scraped by Debian's prometheus server: exact launch counts
// through the query API, a sane p99, promtool's lint, and a clean stop.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "bpf_objects.h"
#include "proc.h"

namespace forkscope {
namespace {

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

struct Response {
  int status = 0;
  std::string headers, body;
};

// A plain HTTP/1.0 GET on loopback (no client library in the test's dependencies).
Response http_get(int port, const std::string& target, const std::string& accept = "") {
  Response r;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return r;
  }
  std::string req = "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\n";
  if (!accept.empty()) req += "Accept: " + accept + "\r\n";
  req += "\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return r;
  }
  std::string all;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) all.append(buf, static_cast<size_t>(n));
  close(fd);
  const size_t head_end = all.find("\r\n\r\n");
  if (all.rfind("HTTP/", 0) != 0 || head_end == std::string::npos) return r;
  r.status = std::stoi(all.substr(all.find(' ') + 1));
  r.headers = all.substr(0, head_end);
  r.body = all.substr(head_end + 4);
  return r;
}

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

// The value of an instant PromQL query with one result; NaN when there is none.
double prom_query(int port, const std::string& promql) {
  const Response r = http_get(port, "/api/v1/query?query=" + url_encode(promql));
  if (r.status != 200) return NAN;
  const auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded() || j["status"] != "success" || j["data"]["result"].size() != 1) return NAN;
  return std::stod(j["data"]["result"][0]["value"][1].get<std::string>());
}

// The value of one series in an exposition; -1 when absent.
double series_value(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
}

int run_fork_count(const std::string& comm, int forks, int workers = 0) {
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string n = std::to_string(forks), w = std::to_string(workers);
    execl(FORK_COUNT_BIN, "fork_count", comm.c_str(), n.c_str(), w.c_str(), nullptr);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

pid_t start_program(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::FILE* f = std::fopen(log.c_str(), "w");
    dup2(fileno(f), 1);
    dup2(fileno(f), 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

bool have(const char* program) {
  return std::system((std::string("command -v ") + program + " >/dev/null 2>&1").c_str()) == 0;
}

// One serve and one prometheus scraping it every second, for the whole suite.
class ServeScraped : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have("prometheus") || !have("promtool")) return;
    dir_ = test::make_temp_dir();
    serve_port_ = free_port();
    serve_ = test::start_forkscope({"serve", "--listen", "127.0.0.1:" + std::to_string(serve_port_), "-q"});
    if (!test::wait_for([] { return http_get(serve_port_, "/metrics").status == 200; }, 60)) return;
    bpf_ = test::bpf_ids_of(serve_.pid);
    prom_port_ = free_port();
    std::ofstream(dir_ + "/prometheus.yml") << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                                            << "scrape_configs:\n  - job_name: forkscope\n    static_configs:\n"
                                            << "      - targets: ['127.0.0.1:" << serve_port_ << "']\n";
    prom_ = start_program({"prometheus", "--config.file=" + dir_ + "/prometheus.yml",
                           "--storage.tsdb.path=" + dir_ + "/tsdb",
                           "--web.listen-address=127.0.0.1:" + std::to_string(prom_port_)},
                          dir_ + "/prometheus.log");
    ready_ = test::wait_for([] { return http_get(prom_port_, "/-/ready").status == 200; }, 60) &&
             test::wait_for([] { return prom_query(prom_port_, "up{job=\"forkscope\"}") == 1; }, 30);
  }
  static void TearDownTestSuite() {
    if (prom_ > 0) {
      kill(prom_, SIGTERM);
      waitpid(prom_, nullptr, 0);
    }
    if (serve_.pid > 0 && test::running(serve_.pid)) {
      kill(serve_.pid, SIGTERM);
      test::finish_forkscope(serve_);
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void SetUp() override {
    if (!have("prometheus") || !have("promtool"))
      GTEST_SKIP() << "Debian's prometheus and promtool are not installed (scripts/setup.sh installs them)";
    ASSERT_TRUE(ready_) << "serve or prometheus did not come up: " << test::slurp(dir_ + "/prometheus.log");
  }

  // Waits until prometheus has scraped the value; returns the last value seen.
  static double wait_scraped(const std::string& promql, double expected) {
    double v = NAN;
    test::wait_for([&] { return (v = prom_query(prom_port_, promql)) == expected; }, 30);
    return v;
  }

  static inline std::string dir_;
  static inline int serve_port_ = 0, prom_port_ = 0;
  static inline test::Started serve_;
  static inline pid_t prom_ = -1;
  static inline bool ready_ = false;
  static inline test::BpfIds bpf_;
};

TEST_F(ServeScraped, PrometheusSeesTheExactLaunchCountAndASaneP99) {
  const std::string comm = "fsq" + std::to_string(getpid() % 100000);
  // Two bursts a few scrapes apart, so rate() over the window sees growth.
  ASSERT_EQ(run_fork_count(comm, 150), 0);
  EXPECT_EQ(wait_scraped("forkscope_launches_total{comm=\"" + comm + "\",kind=\"fork\"}", 150), 150);
  ASSERT_EQ(run_fork_count(comm, 100), 0);
  EXPECT_EQ(wait_scraped("forkscope_launches_total{comm=\"" + comm + "\",kind=\"fork\"}", 250), 250);
  EXPECT_EQ(prom_query(prom_port_,
                       "forkscope_phase_seconds_count{comm=\"" + comm + "\",kind=\"fork\",phase=\"syscall\"}"),
            250);
  EXPECT_EQ(prom_query(prom_port_, "forkscope_launch_failures_total{comm=\"" + comm + "\",kind=\"fork\"}"), 0);
  const double p99 = prom_query(prom_port_,
                                "histogram_quantile(0.99, sum by (le) (rate(forkscope_phase_seconds_bucket{comm=\"" +
                                    comm + "\",phase=\"syscall\"}[1m])))");
  EXPECT_TRUE(std::isfinite(p99)) << p99;
  EXPECT_GT(p99, 0);
  EXPECT_LT(p99, 1.0);  // a fork of a tiny process: far below a second
  // The health figures are there and moving.
  EXPECT_GT(prom_query(prom_port_, "forkscope_program_runs_total"), 0);
  EXPECT_EQ(prom_query(prom_port_, "forkscope_events_dropped_total"), 0);
  EXPECT_GE(prom_query(prom_port_, "forkscope_scrape_duration_seconds"), 0);
}

TEST_F(ServeScraped, HeavyForkingWhileScrapedLosesNothing) {
  const std::string comm = "fsh" + std::to_string(getpid() % 100000);
  std::atomic<bool> done{false};
  std::atomic<int> scrapes{0};
  std::thread scraper([&] {
    while (!done) {
      scrapes += http_get(serve_port_, "/metrics").status == 200;
      usleep(20000);
    }
  });
  constexpr int kForks = 3000, kWorkers = 4;
  const int rc = run_fork_count(comm, kForks, kWorkers);
  done = true;
  scraper.join();
  ASSERT_EQ(rc, 0);
  EXPECT_GT(scrapes.load(), 1);
  // The workers are forks of the same command too.
  const std::string series = "forkscope_launches_total{comm=\"" + comm + "\",kind=\"fork\"}";
  EXPECT_EQ(series_value(http_get(serve_port_, "/metrics").body, series), kForks + kWorkers);
  EXPECT_EQ(wait_scraped(series, kForks + kWorkers), kForks + kWorkers);
}

TEST_F(ServeScraped, PromtoolAcceptsTheExposition) {
  const Response r = http_get(serve_port_, "/metrics");
  ASSERT_EQ(r.status, 200);
  std::ofstream(dir_ + "/metrics.txt") << r.body;
  const std::string cmd = "promtool check metrics < " + dir_ + "/metrics.txt > " + dir_ + "/promtool.log 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << test::slurp(dir_ + "/promtool.log");
  // prometheus-cpp 1.0.1 has no OpenMetrics serializer: asked for it, serve answers
  // in the text format, which the scraper accepts (the Content-Type says which).
  const Response om = http_get(serve_port_, "/metrics", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5");
  EXPECT_EQ(om.status, 200);
  EXPECT_NE(om.headers.find("text/plain"), std::string::npos) << om.headers;
}

TEST_F(ServeScraped, ASecondServeOnTheSamePortExitsTwoWithOneLine) {
  const test::Outcome o = test::run_forkscope({"serve", "--listen", "127.0.0.1:" + std::to_string(serve_port_)});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(test::count_lines(o.err), 1) << o.err;
  EXPECT_NE(o.err.find("127.0.0.1:" + std::to_string(serve_port_)), std::string::npos) << o.err;
}

// Last in the suite: stops the serve the others use.
TEST_F(ServeScraped, ZSigtermDetachesEverything) {
  ASSERT_FALSE(bpf_.progs.empty());
  kill(serve_.pid, SIGTERM);
  const test::Outcome o = test::finish_forkscope(serve_);
  serve_.pid = -1;
  EXPECT_EQ(o.exit_code, 0) << o.err;
  const test::BpfIds left = test::left_after_grace(bpf_);
  EXPECT_TRUE(left.empty()) << left.progs.size() << " programs, " << left.maps.size() << " maps, " << left.links.size()
                            << " links left";
}

TEST(ServeUsage, BadListenExitsTwoWithOneLine) {
  for (const char* listen : {"localhost", "127.0.0.1:0", "127.0.0.1:70000", "nohost:9464", "1.2.3:80", ":9464"}) {
    const test::Outcome o = test::run_forkscope({"serve", "--listen", listen});
    EXPECT_EQ(o.exit_code, 2) << listen;
    EXPECT_EQ(test::count_lines(o.err), 1) << listen << ": " << o.err;
  }
  const test::Outcome o = test::run_forkscope({"serve", "--max-groups", "0"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(test::count_lines(o.err), 1) << o.err;
}

}  // namespace
}  // namespace forkscope
