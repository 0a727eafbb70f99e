// Reads one shard of a shardcap pcapdir spool as a single packet stream.
//
// The spool contract (written by `shardcap run -o dir:PATH`):
//   PATH/shard-K/NNNNNNNNNNNN.pcap  complete pcap segments, 12-digit sequence, consecutive; they
//                                   appear by rename (written in PATH/.tmp), never partially
//   PATH/shard-K.end                the last sequence number and a newline, once the stream is done
// The reader hands over the packets of each segment in sequence order, removes a segment (or
// renames it to NAME.done) once all its packets were handed over, waits for the next segment
// without busy polling (inotify), and ends after the last segment named by the end marker.
//
// Plain C++17 and POSIX/Linux: no Zeek headers, so the logic is built and tested without Zeek.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace shardcap {

// One packet handed over by SpoolReader::next(). The data stays valid until the next call to
// next() (or the reader's destruction).
struct PacketView {
    uint32_t ts_sec = 0;
    uint32_t ts_nsec = 0; // nanoseconds, whatever the segment's precision
    uint32_t caplen = 0;
    uint32_t len = 0;
    const uint8_t* data = nullptr;
};

// What next() found.
enum class ReadState {
    Packet, // a packet was handed over
    Wait,   // the next segment is not there yet: wait() and call again
    End,    // the stream is complete
    Error,  // see error(); the reader stays in this state
};

// The stream's header, as the first segment gives it.
struct StreamInfo {
    uint32_t linktype = 0;
    uint32_t snaplen = 0;
    bool nanos = false;
};

// How the reader treats the spool.
struct SpoolOptions {
    // Rename consumed segments to NAME.done instead of deleting them.
    bool keep_done = false;
    // Wait with inotify. When false (or when no inotify instance can be had), wait_fd() is -1 and
    // wait() sleeps at most kPollMs at a time: the spool is polled.
    bool use_inotify = true;
};

// How often a reader without inotify looks at the spool while it waits (milliseconds). Also the
// bound of a wait on inotify, which does not see changes made on another host (NFS).
constexpr int kPollMs = 100;

// Counters since open().
struct SpoolStats {
    uint64_t received = 0; // packets handed over
    uint64_t bytes = 0;    // their captured bytes
    uint64_t segments = 0; // segments consumed (removed or renamed)
};

class SpoolReader {
public:
    explicit SpoolReader(SpoolOptions options = {});
    ~SpoolReader();
    SpoolReader(const SpoolReader&) = delete;
    SpoolReader& operator=(const SpoolReader&) = delete;

    // Starts reading the shard directory `dir` (e.g. /spool/shard-0). Its parent must exist; the
    // directory itself may appear later. Reading starts at the lowest segment present, so a
    // restarted reader continues where the previous one stopped. False on error (see error()).
    bool open(const std::string& dir);

    // Opens the first segment so that info() is known: Packet when it is, or Wait, End (the
    // stream ended without any segment left to read), Error.
    ReadState start();

    // Hands over the next packet.
    ReadState next(PacketView* pkt);

    // Blocks until the spool directory changes or `timeout_ms` passes (-1: no limit); without
    // inotify, for at most kPollMs.
    void wait(int timeout_ms);

    // A descriptor that becomes readable when the spool changes (for poll/select loops); -1 if
    // inotify is unavailable or disabled (then poll every kPollMs). next() drains it.
    int wait_fd() const { return inotify_; }

    // The error marker beside the shard directory (PATH/shard-K.error): where a consumer reports
    // that it found the stream damaged.
    std::string error_marker() const { return dir_ + ".error"; }

    const StreamInfo& info() const { return info_; }
    const SpoolStats& stats() const { return stats_; }
    const std::string& error() const { return error_; }
    const std::string& dir() const { return dir_; }

private:
    ReadState open_next();
    ReadState fail(const std::string& msg);
    ReadState corrupt(size_t offset, const std::string& what);
    bool finish_segment();
    void close_segment();
    void drain();
    void watch_dir();
    bool read_end(uint64_t* last);
    uint64_t scan(uint64_t above) const;
    std::string segment_path(uint64_t seq) const;

    SpoolOptions options_;
    std::string dir_;
    std::string end_path_;
    int inotify_ = -1;
    int dir_watch_ = -1;

    uint64_t next_seq_ = 0; // 0 until the first segment is found
    std::string path_;      // segment being read
    const uint8_t* map_ = nullptr;
    size_t size_ = 0;
    size_t pos_ = 0;
    bool open_ = false;
    bool swapped_ = false;
    bool nanos_ = false;
    uint32_t max_caplen_ = 0;

    bool have_info_ = false;
    StreamInfo info_;
    SpoolStats stats_;
    ReadState final_ = ReadState::Wait; // Wait while the stream goes on; End or Error once reached
    std::string error_;
};

} // namespace shardcap
