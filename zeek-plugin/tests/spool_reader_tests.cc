// Unit tests of SpoolReader: spools are laid out in temporary directories exactly as the spool
// contract says (segments written in PATH/.tmp, renamed into PATH/shard-0, end marker beside).
// Prints one line per test and "N passed, N failed"; exits 1 if any failed.

#include <dirent.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "spool_reader.h"

using namespace shardcap;

namespace {

struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if ( ! (cond) )                                                                            \
            throw Failure(std::string(__FILE__ ":") + std::to_string(__LINE__) + ": " #cond);     \
    } while ( 0 )

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        auto va_ = (a);                                                                            \
        auto vb_ = (b);                                                                            \
        if ( ! (va_ == vb_) )                                                                      \
            throw Failure(std::string(__FILE__ ":") + std::to_string(__LINE__) + ": " #a " == " #b \
                          " (" + std::to_string(va_) + " vs " + std::to_string(vb_) + ")");        \
    } while ( 0 )

std::vector<std::pair<const char*, std::function<void()>>>& registry() {
    static std::vector<std::pair<const char*, std::function<void()>>> tests;
    return tests;
}

struct Register {
    Register(const char* name, std::function<void()> fn) { registry().emplace_back(name, std::move(fn)); }
};

#define TEST(name)                                    \
    void name();                                      \
    const Register register_##name(#name, name);      \
    void name()

// A packet to put in a segment.
struct Pkt {
    uint32_t sec;
    uint32_t nsec;
    uint32_t len;
    std::string data;
};

// How a segment's header is written.
struct Format {
    bool nanos = false;
    bool big_endian = false;
    uint32_t linktype = 1;
};

void put(std::string& out, uint32_t v, bool be) {
    for ( int i = 0; i < 4; i++ )
        out.push_back(static_cast<char>(be ? v >> (24 - 8 * i) : v >> (8 * i)));
}

void put16(std::string& out, uint16_t v, bool be) {
    out.push_back(static_cast<char>(be ? v >> 8 : v));
    out.push_back(static_cast<char>(be ? v : v >> 8));
}

std::string segment_bytes(const std::vector<Pkt>& pkts, Format f = {}) {
    std::string out;
    put(out, f.nanos ? 0xa1b23c4d : 0xa1b2c3d4, f.big_endian);
    put16(out, 2, f.big_endian);
    put16(out, 4, f.big_endian);
    put(out, 0, f.big_endian);
    put(out, 0, f.big_endian);
    put(out, 65535, f.big_endian);
    put(out, f.linktype, f.big_endian);
    for ( const auto& p : pkts ) {
        put(out, p.sec, f.big_endian);
        put(out, f.nanos ? p.nsec : p.nsec / 1000, f.big_endian);
        put(out, static_cast<uint32_t>(p.data.size()), f.big_endian);
        put(out, p.len, f.big_endian);
        out += p.data;
    }
    return out;
}

void write_file(const std::string& path, const std::string& bytes) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if ( ! f )
        throw Failure("cannot write " + path);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
}

bool exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

std::string name_of(uint64_t seq) {
    char name[32];
    std::snprintf(name, sizeof(name), "%012llu.pcap", static_cast<unsigned long long>(seq));
    return name;
}

// A spool root in a fresh temporary directory, with shard 0.
struct Spool {
    std::string root;
    std::string shard;

    Spool() {
        char tmpl[] = "/tmp/spool-reader-test-XXXXXX";
        if ( ! ::mkdtemp(tmpl) )
            throw Failure("mkdtemp");
        root = tmpl;
        shard = root + "/shard-0";
        ::mkdir((root + "/.tmp").c_str(), 0755);
        ::mkdir(shard.c_str(), 0755);
    }

    ~Spool() {
        std::string cmd = "rm -rf '" + root + "'";
        if ( std::system(cmd.c_str()) != 0 )
            std::fprintf(stderr, "could not remove %s\n", root.c_str());
    }

    // Writes segment `seq` in .tmp, then renames it into the shard directory.
    void publish(uint64_t seq, const std::vector<Pkt>& pkts, Format f = {}) const {
        publish_bytes(seq, segment_bytes(pkts, f));
    }

    void publish_bytes(uint64_t seq, const std::string& bytes) const {
        std::string tmp = root + "/.tmp/shard-0-" + name_of(seq);
        write_file(tmp, bytes);
        if ( std::rename(tmp.c_str(), (shard + "/" + name_of(seq)).c_str()) != 0 )
            throw Failure("rename");
    }

    void end(uint64_t last) const {
        std::string tmp = root + "/.tmp/shard-0.end";
        write_file(tmp, std::to_string(last) + "\n");
        if ( std::rename(tmp.c_str(), (root + "/shard-0.end").c_str()) != 0 )
            throw Failure("rename");
    }

    bool has(uint64_t seq) const { return exists(shard + "/" + name_of(seq)); }
};

std::vector<Pkt> packets(uint32_t first_sec, int n) {
    std::vector<Pkt> out;
    for ( int i = 0; i < n; i++ ) {
        uint32_t sec = first_sec + static_cast<uint32_t>(i);
        out.push_back(Pkt{sec, 123000u * static_cast<uint32_t>(i + 1),
                          static_cast<uint32_t>(60 + i), std::string(static_cast<size_t>(40 + i), char('a' + i))});
    }
    return out;
}

// Reads packets until the reader stops handing them over; returns the final state.
ReadState drain(SpoolReader& r, std::vector<PacketView>* got, std::vector<std::string>* data = nullptr) {
    PacketView v;
    ReadState s;
    while ( (s = r.next(&v)) == ReadState::Packet ) {
        got->push_back(v);
        if ( data )
            data->emplace_back(reinterpret_cast<const char*>(v.data), v.caplen);
    }
    return s;
}

TEST(segments_are_read_in_sequence_order_and_removed) {
    Spool sp;
    sp.publish(2, packets(200, 3));
    sp.publish(1, packets(100, 2));
    sp.publish(3, packets(300, 1));
    sp.end(3);
    SpoolReader r;
    CHECK(r.open(sp.shard));
    CHECK(r.start() == ReadState::Packet);
    CHECK_EQ(r.info().linktype, 1u);
    std::vector<PacketView> got;
    std::vector<std::string> data;
    CHECK(drain(r, &got, &data) == ReadState::End);
    CHECK_EQ(got.size(), size_t(6));
    const uint32_t secs[] = {100, 101, 200, 201, 202, 300};
    for ( size_t i = 0; i < got.size(); i++ )
        CHECK_EQ(got[i].ts_sec, secs[i]);
    CHECK_EQ(got[1].ts_nsec, 246000u);
    CHECK_EQ(got[1].len, 61u);
    CHECK(data[1] == std::string(41, 'b'));
    CHECK(! sp.has(1) && ! sp.has(2) && ! sp.has(3));
    CHECK_EQ(r.stats().received, uint64_t(6));
    CHECK_EQ(r.stats().segments, uint64_t(3));
    CHECK(r.next(&got[0]) == ReadState::End);
}

TEST(a_restarted_reader_starts_at_the_lowest_segment_present) {
    Spool sp;
    sp.publish(7, packets(700, 1));
    sp.publish(8, packets(800, 2));
    sp.end(8);
    SpoolReader r;
    CHECK(r.open(sp.shard));
    std::vector<PacketView> got;
    CHECK(drain(r, &got) == ReadState::End);
    CHECK_EQ(got.size(), size_t(3));
    CHECK_EQ(got[0].ts_sec, 700u);
}

TEST(the_reader_waits_for_the_next_segment_and_is_woken) {
    Spool sp;
    SpoolReader r;
    CHECK(r.open(sp.shard));
    PacketView v;
    CHECK(r.start() == ReadState::Wait);
    CHECK(r.next(&v) == ReadState::Wait);
    CHECK(r.wait_fd() >= 0);
    sp.publish(1, packets(1, 2));
    struct pollfd fd = {r.wait_fd(), POLLIN, 0};
    CHECK_EQ(::poll(&fd, 1, 10000), 1);
    CHECK(r.next(&v) == ReadState::Packet);
    CHECK(r.next(&v) == ReadState::Packet);
    CHECK(r.next(&v) == ReadState::Wait);
    CHECK(! sp.has(1));
    sp.publish(2, packets(2, 1));
    r.wait(10000);
    CHECK(r.next(&v) == ReadState::Packet);
    CHECK_EQ(v.ts_sec, 2u);
    CHECK(r.next(&v) == ReadState::Wait);
    sp.end(2);
    CHECK(r.next(&v) == ReadState::End);
}

TEST(without_inotify_the_reader_polls) {
    Spool sp;
    SpoolOptions opt;
    opt.use_inotify = false;
    SpoolReader r(opt);
    CHECK(r.open(sp.shard));
    CHECK_EQ(r.wait_fd(), -1);
    PacketView v;
    CHECK(r.start() == ReadState::Wait);
    r.wait(-1); // returns after kPollMs at most, although nothing changed
    CHECK(r.next(&v) == ReadState::Wait);
    sp.publish(1, packets(1, 1));
    r.wait(-1);
    CHECK(r.next(&v) == ReadState::Packet);
    CHECK(r.next(&v) == ReadState::Wait);
    sp.end(1);
    r.wait(-1);
    CHECK(r.next(&v) == ReadState::End);
    CHECK(r.error_marker() == sp.shard + ".error");
}

TEST(a_shard_directory_may_appear_later) {
    Spool sp;
    ::rmdir(sp.shard.c_str());
    SpoolReader r;
    CHECK(r.open(sp.shard));
    CHECK(r.start() == ReadState::Wait);
    ::mkdir(sp.shard.c_str(), 0755);
    sp.publish(1, packets(5, 1));
    CHECK(r.start() == ReadState::Packet);
    PacketView v;
    CHECK(r.next(&v) == ReadState::Packet);
    CHECK_EQ(v.ts_sec, 5u);
}

TEST(partial_segments_are_never_read) {
    Spool sp;
    auto bytes = segment_bytes(packets(1, 3));
    // Being written in .tmp, and other names in the shard directory: none is a segment.
    write_file(sp.root + "/.tmp/shard-0-" + name_of(1), bytes.substr(0, bytes.size() - 7));
    write_file(sp.shard + "/" + name_of(1) + ".part", bytes.substr(0, 30));
    write_file(sp.shard + "/." + name_of(1), bytes.substr(0, 30));
    SpoolReader r;
    CHECK(r.open(sp.shard));
    PacketView v;
    CHECK(r.next(&v) == ReadState::Wait);
    CHECK(r.next(&v) == ReadState::Wait);
    CHECK_EQ(r.stats().received, uint64_t(0));
    sp.publish_bytes(1, bytes);
    std::vector<PacketView> got;
    CHECK(drain(r, &got) == ReadState::Wait);
    CHECK_EQ(got.size(), size_t(3));
}

TEST(an_end_marker_without_segments_ends_at_once) {
    Spool sp;
    sp.end(0);
    SpoolReader r;
    CHECK(r.open(sp.shard));
    CHECK(r.start() == ReadState::End);
    PacketView v;
    CHECK(r.next(&v) == ReadState::End);
}

TEST(a_segment_missing_before_the_end_is_an_error) {
    Spool sp;
    sp.publish(1, packets(1, 1));
    sp.end(2);
    SpoolReader r;
    CHECK(r.open(sp.shard));
    std::vector<PacketView> got;
    CHECK(drain(r, &got) == ReadState::Error);
    CHECK_EQ(got.size(), size_t(1));
    CHECK(r.error().find(name_of(2)) != std::string::npos);
    CHECK(r.error().find("shard-0.end") != std::string::npos);
}

TEST(a_gap_in_the_sequence_is_an_error) {
    Spool sp;
    sp.publish(1, packets(1, 1));
    sp.publish(3, packets(3, 1));
    SpoolReader r;
    CHECK(r.open(sp.shard));
    std::vector<PacketView> got;
    CHECK(drain(r, &got) == ReadState::Error);
    CHECK(r.error().find(name_of(2) + ": missing") != std::string::npos);
}

TEST(a_truncated_segment_is_reported_with_its_name_and_offset) {
    Spool sp;
    sp.publish(1, packets(1, 2));
    auto bytes = segment_bytes(packets(10, 3));
    sp.publish_bytes(2, bytes.substr(0, bytes.size() - 5));
    sp.end(2);
    SpoolReader r;
    CHECK(r.open(sp.shard));
    std::vector<PacketView> got;
    CHECK(drain(r, &got) == ReadState::Error);
    CHECK_EQ(got.size(), size_t(4)); // segment 1, and the whole records of segment 2
    // The third record of segment 2 starts after the header and two records of 40 and 41 bytes.
    std::string where = name_of(2) + ": byte " + std::to_string(24 + 16 + 40 + 16 + 41);
    CHECK(r.error().find(where) != std::string::npos);
    CHECK(! sp.has(1));
    CHECK(sp.has(2)); // not consumed
    PacketView v;
    CHECK(r.next(&v) == ReadState::Error);
}

TEST(a_segment_that_is_not_pcap_is_reported) {
    Spool sp;
    sp.publish_bytes(1, std::string(100, 'x'));
    SpoolReader r;
    CHECK(r.open(sp.shard));
    CHECK(r.start() == ReadState::Error);
    CHECK(r.error().find(name_of(1) + ": byte 0: not a pcap file") != std::string::npos);
}

TEST(a_segment_with_another_link_type_is_reported) {
    Spool sp;
    sp.publish(1, packets(1, 1));
    Format other;
    other.linktype = 113;
    sp.publish(2, packets(2, 1), other);
    SpoolReader r;
    CHECK(r.open(sp.shard));
    std::vector<PacketView> got;
    CHECK(drain(r, &got) == ReadState::Error);
    CHECK_EQ(got.size(), size_t(1));
    CHECK(r.error().find(name_of(2) + ": byte 20: link type 113") != std::string::npos);
}

TEST(precision_and_byte_order_are_honoured) {
    Spool sp;
    Format ns;
    ns.nanos = true;
    Format be_us;
    be_us.big_endian = true;
    Format be_ns;
    be_ns.big_endian = true;
    be_ns.nanos = true;
    sp.publish(1, {Pkt{1, 123456789, 50, "abc"}}, ns);
    sp.publish(2, {Pkt{2, 123456000, 50, "def"}}, be_us);
    sp.publish(3, {Pkt{3, 987654321, 50, "ghi"}}, be_ns);
    sp.end(3);
    SpoolReader r;
    CHECK(r.open(sp.shard));
    CHECK(r.start() == ReadState::Packet);
    CHECK(r.info().nanos);
    std::vector<PacketView> got;
    std::vector<std::string> data;
    CHECK(drain(r, &got, &data) == ReadState::End);
    CHECK_EQ(got.size(), size_t(3));
    CHECK_EQ(got[0].ts_nsec, 123456789u);
    CHECK_EQ(got[1].ts_nsec, 123456000u);
    CHECK_EQ(got[1].caplen, 3u);
    CHECK_EQ(got[1].len, 50u);
    CHECK_EQ(got[2].ts_sec, 3u);
    CHECK_EQ(got[2].ts_nsec, 987654321u);
    CHECK(data[2] == "ghi");
}

TEST(consumed_segments_can_be_kept_as_done) {
    Spool sp;
    sp.publish(1, packets(1, 2));
    sp.end(1);
    SpoolOptions opt;
    opt.keep_done = true;
    SpoolReader r(opt);
    CHECK(r.open(sp.shard));
    std::vector<PacketView> got;
    CHECK(drain(r, &got) == ReadState::End);
    CHECK(! sp.has(1));
    CHECK(exists(sp.shard + "/" + name_of(1) + ".done"));
}

TEST(empty_records_are_handed_over) {
    // The Zeek glue turns them into the weird empty_pcap_header, as Zeek's pcap source does.
    Spool sp;
    sp.publish(1, {Pkt{1, 0, 60, "x"}, Pkt{2, 0, 0, ""}, Pkt{3, 0, 60, "y"}});
    sp.end(1);
    SpoolReader r;
    CHECK(r.open(sp.shard));
    std::vector<PacketView> got;
    CHECK(drain(r, &got) == ReadState::End);
    CHECK_EQ(got.size(), size_t(3));
    CHECK_EQ(got[1].caplen, 0u);
    CHECK_EQ(got[1].len, 0u);
    CHECK_EQ(r.stats().received, uint64_t(3));
}

TEST(a_missing_spool_is_an_error) {
    SpoolReader r;
    CHECK(! r.open("/nonexistent-spool-dir/shard-0"));
    CHECK(r.error().find("/nonexistent-spool-dir") != std::string::npos);
}

} // namespace

int main() {
    int passed = 0, failed = 0;
    for ( auto& [name, fn] : registry() ) {
        try {
            fn();
            std::printf("test %s ... ok\n", name);
            passed++;
        } catch ( const std::exception& e ) {
            std::printf("test %s ... FAILED: %s\n", name, e.what());
            failed++;
        }
    }
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
