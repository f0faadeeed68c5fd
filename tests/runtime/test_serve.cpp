// forkscope serve scraped by Debian's prometheus server: exact launch and failure
// counts through the query API, a sane p99, promtool's lint, the Grafana
// dashboard's queries, group eviction, and a clean stop.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
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

// Runs a helper to its end (in cgroup, when given); its exit code.
int run_helper(const char* program, const std::vector<std::string>& args, const std::string& cgroup = "") {
  const pid_t pid = fork();
  if (pid == 0) {
    if (!cgroup.empty()) std::ofstream(cgroup + "/cgroup.procs") << getpid() << std::flush;
    std::vector<char*> argv{const_cast<char*>(program)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(program, argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int run_fork_count(const std::string& comm, int forks, int workers = 0, const std::string& cgroup = "") {
  return run_helper(FORK_COUNT_BIN, {comm, std::to_string(forks), std::to_string(workers)}, cgroup);
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

// One serve (--depth full: every metric family, per-mapping time included) and one
// prometheus scraping it every second, for the whole suite.
class ServeScraped : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have("prometheus") || !have("promtool")) return;
    dir_ = test::make_temp_dir();
    serve_port_ = free_port();
    serve_ = test::start_forkscope(
        {"serve", "--listen", "127.0.0.1:" + std::to_string(serve_port_), "--depth", "full", "-q"});
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
  // No failure: no failure series (one per errno that occurred).
  EXPECT_TRUE(std::isnan(prom_query(prom_port_, "count(forkscope_launch_failures_total{comm=\"" + comm + "\"})")));
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

// tests/runtime/map_fork.c under serve (its default --depth full: per-mapping
// attribution): 256 MiB anonymous and 64 MiB of a private file mapping, both
// written, then an exact number of forks.  It holds its layout at a gate until
// Prometheus has both mappings' series (its layout read and matched), so every
// fork is attributed: none unattributed, the anonymous mapping the costlier (four
// times the pages), the per-mapping time at least copy_page_range's.
TEST_F(ServeScraped, PerMappingCopyTimeNamesTheAnonymousOverTheFileMapping) {
  constexpr int kForks = 20;
  const std::string comm = "fsm" + std::to_string(getpid() % 100000);
  const std::string gate = dir_ + "/map_go", file = dir_ + "/mapped", log = dir_ + "/map_fork.log";
  const pid_t pid = start_program({MAP_FORK_BIN, comm, "256", "64", file, std::to_string(kForks), "wait:" + gate}, log);
  const std::string of = "comm=\"" + comm + "\",kind=\"fork\"";
  const std::string anon = "forkscope_mapping_copy_seconds_total{" + of + ",mapping=~\"\\\\[anon.*\\\\] rw-p 256M\"}";
  const std::string mapped = "forkscope_mapping_copy_seconds_total{" + of + ",mapping=\"" + file + " rw-p 64M\"}";
  const bool seen =
      test::wait_for([&] { return prom_query(prom_port_, anon) > 0 && prom_query(prom_port_, mapped) > 0; }, 30);
  std::ofstream(gate) << "go\n";  // let it go even so, so it ends
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test::slurp(log);
  ASSERT_TRUE(seen) << "no series for both mappings: " << http_get(serve_port_, "/metrics").body;
  EXPECT_EQ(wait_scraped("forkscope_launches_total{" + of + "}", kForks), kForks);
  EXPECT_EQ(prom_query(prom_port_, "forkscope_mapping_unattributed_launches_total{" + of + "}"), 0);
  const double anon_s = prom_query(prom_port_, anon), file_s = prom_query(prom_port_, mapped);
  EXPECT_GT(file_s, 0);
  EXPECT_GT(anon_s, file_s);
  // At most kTopMappings + 1 series; together vma_setup + copy_page_range of every
  // VMA copied, so at least copy_page_range's total.
  EXPECT_LE(prom_query(prom_port_, "count(forkscope_mapping_copy_seconds_total{" + of + "})"), 6);
  const double all = prom_query(prom_port_, "sum(forkscope_mapping_copy_seconds_total{" + of + "})");
  const double cpr = prom_query(prom_port_, "forkscope_phase_seconds_sum{" + of + ",phase=\"copy_page_range\"}");
  EXPECT_GT(cpr, 0);
  EXPECT_GE(all * (1 + 1e-9), cpr);
}

// launch_fail: clone calls the kernel refuses with EINVAL, then forks it refuses
// with EAGAIN (RLIMIT_NPROC as nobody), each an exact number of times.
TEST_F(ServeScraped, FailedLaunchesCountByErrno) {
  const std::string comm = "fse" + std::to_string(getpid() % 100000);
  constexpr int kEinval = 7, kEagain = 13;
  ASSERT_EQ(run_helper(LAUNCH_FAIL_BIN, {comm, std::to_string(kEinval), std::to_string(kEagain)}), 0);
  const std::string of_comm = "comm=\"" + comm + "\"";
  EXPECT_EQ(wait_scraped("forkscope_launch_failures_total{" + of_comm + ",kind=\"fork\",errno=\"EAGAIN\"}", kEagain),
            kEagain);
  EXPECT_EQ(wait_scraped("sum(forkscope_launch_failures_total{" + of_comm + ",errno=\"EINVAL\"})", kEinval), kEinval);
  // No other errno, and nothing launched.
  EXPECT_EQ(prom_query(prom_port_, "sum(forkscope_launch_failures_total{" + of_comm + "})"), kEinval + kEagain);
  EXPECT_EQ(prom_query(prom_port_, "count(forkscope_launch_failures_total{" + of_comm + "})"), 2);
  EXPECT_EQ(prom_query(prom_port_, "sum(forkscope_launches_total{" + of_comm + "})"), 0);
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

// contrib/grafana/forkscope.json: every metric its queries name is one serve
// exports (the families of a real scrape), and Prometheus accepts every panel's
// query (Grafana's variables replaced by what matches everything).
TEST_F(ServeScraped, TheGrafanaDashboardQueriesOnlyExportedMetrics) {
  std::ifstream in(std::string(FS_SOURCE_DIR) + "/contrib/grafana/forkscope.json");
  ASSERT_TRUE(in) << "contrib/grafana/forkscope.json";
  const auto dashboard = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(dashboard.is_discarded());
  std::vector<std::string> queries, panel_queries;
  std::function<void(const nlohmann::json&, bool)> walk = [&](const nlohmann::json& j, bool in_target) {
    if (j.is_object()) {
      for (const auto& [key, value] : j.items()) {
        if ((key == "expr" || key == "query" || key == "definition") && value.is_string()) {
          queries.push_back(value.get<std::string>());
          if (key == "expr" && in_target) panel_queries.push_back(value.get<std::string>());
        } else if (key == "query" && value.is_object()) {
          walk(value, false);
        } else {
          walk(value, in_target || key == "targets");
        }
      }
    } else if (j.is_array()) {
      for (const auto& v : j) walk(v, in_target);
    }
  };
  walk(dashboard, false);
  ASSERT_GE(panel_queries.size(), 5u);

  // Exported names: every family's TYPE line, a histogram's series suffixes too.
  const Response r = http_get(serve_port_, "/metrics");
  ASSERT_EQ(r.status, 200);
  std::set<std::string> exported;
  std::istringstream lines(r.body);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string hash, type_word, name, type;
    if (!(words >> hash >> type_word >> name >> type) || hash != "#" || type_word != "TYPE") continue;
    exported.insert(name);
    if (type == "histogram")
      for (const char* suffix : {"_bucket", "_sum", "_count"}) exported.insert(name + suffix);
  }
  const std::regex metric("forkscope_[a-zA-Z0-9_]+");
  size_t named = 0;
  for (const std::string& q : queries) {
    for (auto it = std::sregex_iterator(q.begin(), q.end(), metric); it != std::sregex_iterator(); ++it) {
      named++;
      EXPECT_TRUE(exported.count(it->str())) << it->str() << " in: " << q;
    }
  }
  EXPECT_GE(named, panel_queries.size());
  for (std::string q : panel_queries) {
    q = std::regex_replace(q, std::regex("\\$__rate_interval"), "1m");
    q = std::regex_replace(q, std::regex("\\$\\{?[a-zA-Z_]+\\}?"), ".*");
    const Response answer = http_get(prom_port_, "/api/v1/query?query=" + url_encode(q));
    EXPECT_EQ(answer.status, 200) << q << ": " << answer.body;
  }
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

// --max-groups 3 --evict-after 4 in a cgroup of the test's own: six commands one
// after the other each get a series of their own (none goes to "(other)"), each
// evicted once idle; the first, back, continues from its total.  Each count must
// be read before its group goes idle for 4 s: 2 s was within reach of a stall on a
// loaded 2-CPU machine under ASan.
TEST(ServeEviction, MoreCommandsThanCellsOverTimeEachGetTheirOwnSeries) {
  if (!have("promtool")) GTEST_SKIP() << "Debian's promtool is not installed (scripts/setup.sh installs it)";
  const std::string root = test::cgroup2_root();
  if (root.empty()) GTEST_SKIP() << "no cgroup v2 hierarchy mounted";
  const std::string cg = root + "/forkscope-serve-" + std::to_string(getpid());
  ASSERT_EQ(mkdir(cg.c_str(), 0755), 0) << cg;
  const int port = free_port();
  test::Started serve = test::start_forkscope({"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--cgroup", cg,
                                               "--max-groups", "3", "--evict-after", "4", "-q"});
  // However the test ends (an ASSERT returns early): serve stopped, the cgroup gone.
  struct Cleanup {
    test::Started& serve;
    const std::string& cg;
    ~Cleanup() {
      if (serve.pid > 0 && test::running(serve.pid)) {
        kill(serve.pid, SIGTERM);
        test::finish_forkscope(serve);
      }
      rmdir(cg.c_str());
    }
  } cleanup{serve, cg};
  const bool up = test::wait_for([&] { return http_get(port, "/metrics").status == 200; }, 60);
  std::string text;
  auto value = [&](const std::string& series) { return series_value(text = http_get(port, "/metrics").body, series); };
  auto launches = [&](const std::string& comm) {
    return value("forkscope_launches_total{comm=\"" + comm + "\",kind=\"fork\"}");
  };
  constexpr int kComms = 6;
  const std::string prefix = "fsv" + std::to_string(getpid() % 10000) + "-";
  if (up) {
    for (int i = 0; i < kComms; i++) {
      const std::string comm = prefix + std::to_string(i);
      ASSERT_EQ(run_fork_count(comm, 10 + i, 0, cg), 0);
      EXPECT_TRUE(test::wait_for([&] { return launches(comm) == 10 + i; }, 30)) << comm << ": " << launches(comm);
      EXPECT_LE(value("forkscope_groups"), 3) << text;
      EXPECT_TRUE(test::wait_for([&] { return launches(comm) == -1; }, 30)) << comm << " not evicted";
    }
    EXPECT_EQ(value("forkscope_launches_total{comm=\"(other)\",kind=\"mixed\"}"), 0) << text;
    EXPECT_GE(value("forkscope_groups_evicted_total"), kComms);
    // The first command comes back: its counters continue from its totals.
    ASSERT_EQ(run_fork_count(prefix + "0", 5, 0, cg), 0);
    EXPECT_TRUE(test::wait_for([&] { return launches(prefix + "0") == 15; }, 30)) << launches(prefix + "0");
    EXPECT_EQ(value("forkscope_phase_seconds_count{comm=\"" + prefix + "0\",kind=\"fork\",phase=\"syscall\"}"), 15);
    // serve's default depth (process): dup_mmap timed, nothing per VMA.
    EXPECT_EQ(value("forkscope_phase_seconds_count{comm=\"" + prefix + "0\",kind=\"fork\",phase=\"dup_mmap\"}"), 15);
    EXPECT_EQ(text.find("phase=\"copy_page_range\""), std::string::npos);
    EXPECT_EQ(text.find("forkscope_mapping_copy_seconds_total{"), std::string::npos);
    const test::TempDir dir;
    std::ofstream(dir / "metrics.txt") << text;
    const std::string cmd = "promtool check metrics < " + (dir / "metrics.txt") + " > " + (dir / "promtool.log") +
                            " 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << test::slurp(dir / "promtool.log");
  }
  kill(serve.pid, SIGTERM);
  const test::Outcome o = test::finish_forkscope(serve);
  serve.pid = -1;
  ASSERT_TRUE(up) << o.err;
  EXPECT_EQ(o.exit_code, 0) << o.err;
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
