// Unit tests for the user-client list explain() reports: the parser of the IORegistry's
// IOUserClientCreator text (bridge/user_client_info.h, kernel-facts §4.6) and the simulated
// transport's userClients(). Run with npm run test:native (test/native/run.sh).
#include <stdint.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "protocol.gen.h"
#include "sim_kernel.h"
#include "sim_transport.h"
#include "unit.h"
#include "user_client_info.h"

using namespace kb;

namespace {

bool parse(const std::string &text, UserClientInfo *out) { return ParseUserClientCreator(text, out); }

}  // namespace

TEST(creator_plain, "\"pid 123, node\" is pid 123, process node") {
  UserClientInfo c;
  CHECK(parse("pid 123, node", &c));
  CHECK_EQ(c.pid, 123);
  CHECK_STR(c.process, "node");
}

TEST(creator_name_with_spaces_and_commas, "the name is everything after the first \", \", verbatim") {
  UserClientInfo c;
  CHECK(parse("pid 7, Google Chrome He", &c));
  CHECK_EQ(c.pid, 7);
  CHECK_STR(c.process, "Google Chrome He");
  CHECK(parse("pid 42, a, b,c ", &c));
  CHECK_EQ(c.pid, 42);
  CHECK_STR(c.process, "a, b,c ");
  CHECK(parse("pid 0, kernel_task", &c));  // a kernel-side opener: proc_selfpid() is 0
  CHECK_EQ(c.pid, 0);
  CHECK(parse("pid 2147483647, x", &c));
  CHECK_EQ(c.pid, 2147483647);
}

TEST(creator_empty_name, "\"pid 9, \" (the process was gone when proc_name ran) is process unknown") {
  UserClientInfo c;
  CHECK(parse("pid 9, ", &c));
  CHECK_EQ(c.pid, 9);
  CHECK_STR(c.process, "unknown");
}

TEST(creator_garbled_is_skipped, "missing or garbled text: false, and the output untouched") {
  const char *bad[] = {"", "pid", "pid ", "pid , node", "pid x, node", "pid 12 node", "pid 12,node",
                       "pid 12", "PID 12, node", " pid 12, node", "pid -1, node", "pid +1, node",
                       "pid 2147483648, node", "pid 99999999999999999999, node", "123, node",
                       "pid 1 2, node"};
  for (const char *text : bad) {
    UserClientInfo c;
    c.pid = -5;
    c.process = "untouched";
    if (parse(text, &c)) fprintf(stderr, "  accepted: \"%s\"\n", text);
    CHECK(!parse(text, &c));
    CHECK_EQ(c.pid, -5);
    CHECK_STR(c.process, "untouched");
  }
}

TEST(sim_transport_user_clients, "the sim's userClients: every open client of the kernel, with this process's short name") {
  std::shared_ptr<sim::SimKernel> kernel(new sim::SimKernel());
  uint32_t kr = 0;
  std::unique_ptr<Transport> a = SimTransport::open(kernel, true, &kr, (int32_t)getpid());
  CHECK_EQ(kr, RC_kIOReturnSuccess);
  std::vector<UserClientInfo> list;
  CHECK_EQ(a->userClients(list), RC_kIOReturnSuccess);
  CHECK_EQ(list.size(), 1u);
  if (list.size() == 1) {
    CHECK_EQ(list[0].pid, getpid());
    CHECK_STR(list[0].process, ProcessShortName((int32_t)getpid()));
    CHECK(list[0].process != "unknown");
    CHECK(list[0].process.size() <= 16);
  }
  std::unique_ptr<Transport> b = SimTransport::open(kernel, true, &kr, (int32_t)getpid());
  CHECK_EQ(a->userClients(list), RC_kIOReturnSuccess);
  CHECK_EQ(list.size(), 2u);
  b->close();
  CHECK_EQ(a->userClients(list), RC_kIOReturnSuccess);
  CHECK_EQ(list.size(), 1u);
  a->close();
  // Closed, the transport still reads the registry (no connection is needed), now empty.
  CHECK_EQ(a->userClients(list), RC_kIOReturnSuccess);
  CHECK(list.empty());
}

TEST(process_short_name, "ProcessShortName: the executable's file name, at most 16 bytes; unknown for no process") {
  std::string me = ProcessShortName((int32_t)getpid());
  CHECK(!me.empty() && me.size() <= 16 && me.find('/') == std::string::npos);
  CHECK_STR(ProcessShortName(-1), "unknown");
}

int main() { return unit::runAll(); }
