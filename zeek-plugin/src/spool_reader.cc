// Reads one shard of a shardcap pcapdir spool as a single packet stream (see spool_reader.h).

#include "spool_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace shardcap {

namespace {

constexpr size_t kFileHeader = 24;
constexpr size_t kRecordHeader = 16;
constexpr size_t kDigits = 12;
constexpr const char* kSuffix = ".pcap";
// libpcap's largest record for a snapshot length below it.
constexpr uint32_t kMaxCaplen = 262144;

uint32_t get32(const uint8_t* p, bool swapped) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return swapped ? __builtin_bswap32(v) : v;
}

uint16_t get16(const uint8_t* p, bool swapped) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return swapped ? __builtin_bswap16(v) : v;
}

// The sequence number of a segment file name ("000000000042.pcap"), or 0.
uint64_t parse_segment_name(const char* name) {
    if ( std::strlen(name) != kDigits + std::strlen(kSuffix) || std::strcmp(name + kDigits, kSuffix) != 0 )
        return 0;
    uint64_t seq = 0;
    for ( size_t i = 0; i < kDigits; i++ ) {
        if ( name[i] < '0' || name[i] > '9' )
            return 0;
        seq = seq * 10 + static_cast<uint64_t>(name[i] - '0');
    }
    return seq;
}

std::string errno_text() { return std::strerror(errno); }

} // namespace

SpoolReader::SpoolReader(SpoolOptions options) : options_(options) {}

SpoolReader::~SpoolReader() {
    close_segment();
    if ( inotify_ >= 0 )
        ::close(inotify_);
}

bool SpoolReader::open(const std::string& dir) {
    dir_ = dir;
    while ( dir_.size() > 1 && dir_.back() == '/' )
        dir_.pop_back();
    end_path_ = dir_ + ".end";
    auto slash = dir_.rfind('/');
    std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : dir_.substr(0, slash));

    struct stat st;
    if ( ::stat(parent.c_str(), &st) != 0 || ! S_ISDIR(st.st_mode) ) {
        fail(dir_ + ": the spool directory " + parent + " does not exist");
        return false;
    }
    if ( ::stat(dir_.c_str(), &st) == 0 && ! S_ISDIR(st.st_mode) ) {
        fail(dir_ + ": not a directory (expected a spool shard directory such as /spool/shard-0)");
        return false;
    }
    inotify_ = options_.use_inotify ? ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC) : -1;
    // The parent tells when the shard directory or its end marker appears.
    if ( inotify_ >= 0 && ::inotify_add_watch(inotify_, parent.c_str(), IN_CREATE | IN_MOVED_TO) < 0 ) {
        ::close(inotify_);
        inotify_ = -1;
    }
    watch_dir();
    return true;
}

void SpoolReader::watch_dir() {
    if ( inotify_ < 0 || dir_watch_ >= 0 )
        return;
    dir_watch_ = ::inotify_add_watch(inotify_, dir_.c_str(), IN_MOVED_TO | IN_CREATE | IN_CLOSE_WRITE);
}

void SpoolReader::drain() {
    if ( inotify_ < 0 )
        return;
    alignas(struct inotify_event) char buf[4096];
    while ( ::read(inotify_, buf, sizeof(buf)) > 0 ) {
    }
}

void SpoolReader::wait(int timeout_ms) {
    if ( final_ != ReadState::Wait )
        return;
    if ( inotify_ < 0 ) {
        ::usleep(static_cast<useconds_t>(timeout_ms < 0 || timeout_ms > kPollMs ? kPollMs : timeout_ms) * 1000);
        return;
    }
    struct pollfd fd = {inotify_, POLLIN, 0};
    ::poll(&fd, 1, timeout_ms);
    drain();
}

ReadState SpoolReader::fail(const std::string& msg) {
    error_ = msg;
    final_ = ReadState::Error;
    close_segment();
    return ReadState::Error;
}

ReadState SpoolReader::corrupt(size_t offset, const std::string& what) {
    return fail(path_ + ": byte " + std::to_string(offset) + ": " + what +
                " (corrupt segment; shardcap writes whole segments, so check what else writes there)");
}

std::string SpoolReader::segment_path(uint64_t seq) const {
    char name[32];
    std::snprintf(name, sizeof(name), "%012llu%s", static_cast<unsigned long long>(seq), kSuffix);
    return dir_ + "/" + name;
}

bool SpoolReader::read_end(uint64_t* last) {
    FILE* f = std::fopen(end_path_.c_str(), "r");
    if ( ! f )
        return false;
    unsigned long long v = 0;
    int n = std::fscanf(f, "%llu", &v);
    std::fclose(f);
    if ( n != 1 ) {
        fail(end_path_ + ": byte 0: not a sequence number");
        return false;
    }
    *last = v;
    return true;
}

uint64_t SpoolReader::scan(uint64_t above) const {
    DIR* d = ::opendir(dir_.c_str());
    if ( ! d )
        return 0;
    uint64_t found = 0;
    while ( struct dirent* e = ::readdir(d) ) {
        uint64_t seq = parse_segment_name(e->d_name);
        if ( seq > above && (found == 0 || seq < found) )
            found = seq;
    }
    ::closedir(d);
    return found;
}

void SpoolReader::close_segment() {
    if ( map_ )
        ::munmap(const_cast<uint8_t*>(map_), size_);
    map_ = nullptr;
    size_ = pos_ = 0;
    open_ = false;
}

bool SpoolReader::finish_segment() {
    close_segment();
    int rc = options_.keep_done ? ::rename(path_.c_str(), (path_ + ".done").c_str()) : ::unlink(path_.c_str());
    if ( rc != 0 && errno != ENOENT ) {
        fail(path_ + ": cannot " + (options_.keep_done ? "rename" : "remove") + " the consumed segment: " +
             errno_text() + " (shardcap waits for consumed segments to go)");
        return false;
    }
    stats_.segments++;
    next_seq_++;
    return true;
}

ReadState SpoolReader::open_next() {
    drain();
    watch_dir();
    if ( next_seq_ == 0 ) {
        // The end marker is read before the directory: segments appear before it.
        uint64_t last = 0;
        bool ended = read_end(&last);
        if ( final_ == ReadState::Error )
            return final_;
        next_seq_ = scan(0);
        if ( next_seq_ == 0 ) {
            if ( ended )
                return final_ = ReadState::End;
            return ReadState::Wait;
        }
    }
    path_ = segment_path(next_seq_);
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if ( fd < 0 && errno == ENOENT ) {
        // Look at the end marker and the later segments first, then try again: whatever they show
        // was published before this second look.
        uint64_t last = 0;
        bool ended = read_end(&last);
        if ( final_ == ReadState::Error )
            return final_;
        uint64_t later = scan(next_seq_);
        fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        if ( fd < 0 && errno == ENOENT ) {
            if ( ended && last < next_seq_ )
                return final_ = ReadState::End;
            if ( ended || later != 0 )
                return fail(path_ + ": missing, but " +
                            (ended ? end_path_ + " names segment " + std::to_string(last) + " as the last"
                                   : "segment " + std::to_string(later) + " is present") +
                            "; segments were removed by something else than this reader");
            return ReadState::Wait;
        }
    }
    if ( fd < 0 )
        return fail(path_ + ": cannot open: " + errno_text());

    struct stat st;
    if ( ::fstat(fd, &st) != 0 ) {
        ::close(fd);
        return fail(path_ + ": cannot stat: " + errno_text());
    }
    size_ = static_cast<size_t>(st.st_size);
    if ( size_ >= kFileHeader ) {
        void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if ( m == MAP_FAILED ) {
            ::close(fd);
            size_ = 0;
            return fail(path_ + ": cannot map: " + errno_text());
        }
        ::madvise(m, size_, MADV_SEQUENTIAL);
        map_ = static_cast<const uint8_t*>(m);
    }
    ::close(fd);
    open_ = true;
    if ( size_ < kFileHeader )
        return corrupt(0, "shorter than a pcap header (" + std::to_string(size_) + " bytes)");

    uint32_t magic;
    std::memcpy(&magic, map_, 4);
    switch ( magic ) {
        case 0xa1b2c3d4: swapped_ = false, nanos_ = false; break;
        case 0xa1b23c4d: swapped_ = false, nanos_ = true; break;
        case 0xd4c3b2a1: swapped_ = true, nanos_ = false; break;
        case 0x4d3cb2a1: swapped_ = true, nanos_ = true; break;
        default: {
            char hex[16];
            std::snprintf(hex, sizeof(hex), "%08x", magic);
            return corrupt(0, std::string("not a pcap file (magic ") + hex + ")");
        }
    }
    if ( get16(map_ + 4, swapped_) != 2 )
        return corrupt(4, "pcap version " + std::to_string(get16(map_ + 4, swapped_)) + ", expected 2");
    uint32_t snaplen = get32(map_ + 16, swapped_);
    uint32_t linktype = get32(map_ + 20, swapped_);
    max_caplen_ = std::max(snaplen, kMaxCaplen);
    if ( ! have_info_ ) {
        info_ = StreamInfo{linktype, snaplen, nanos_};
        have_info_ = true;
    }
    else if ( linktype != info_.linktype )
        return corrupt(20, "link type " + std::to_string(linktype) + " differs from the stream's " +
                               std::to_string(info_.linktype));
    pos_ = kFileHeader;
    return ReadState::Packet;
}

ReadState SpoolReader::start() {
    if ( final_ != ReadState::Wait )
        return final_;
    if ( have_info_ )
        return ReadState::Packet;
    return open_next();
}

ReadState SpoolReader::next(PacketView* pkt) {
    if ( final_ != ReadState::Wait )
        return final_;
    for ( ;; ) {
        if ( ! open_ ) {
            ReadState s = open_next();
            if ( s != ReadState::Packet )
                return s;
        }
        if ( pos_ == size_ ) {
            // Every packet of this segment was handed over, and the caller is done with the last.
            if ( ! finish_segment() )
                return final_;
            continue;
        }
        if ( size_ - pos_ < kRecordHeader )
            return corrupt(pos_, "record header cut short (" + std::to_string(size_ - pos_) + " bytes left)");
        const uint8_t* h = map_ + pos_;
        uint32_t frac = get32(h + 4, swapped_);
        uint32_t caplen = get32(h + 8, swapped_);
        if ( caplen > max_caplen_ )
            return corrupt(pos_, "record length " + std::to_string(caplen) + " exceeds " +
                                     std::to_string(max_caplen_));
        if ( caplen > size_ - pos_ - kRecordHeader )
            return corrupt(pos_, "record of " + std::to_string(caplen) + " bytes runs past the end (" +
                                     std::to_string(size_) + " bytes)");
        if ( frac >= (nanos_ ? 1000000000u : 1000000u) )
            return corrupt(pos_ + 4, "timestamp fraction " + std::to_string(frac) + " out of range");
        pkt->ts_sec = get32(h, swapped_);
        pkt->ts_nsec = nanos_ ? frac : frac * 1000;
        pkt->caplen = caplen;
        pkt->len = get32(h + 12, swapped_);
        pkt->data = h + kRecordHeader;
        pos_ += kRecordHeader + caplen;
        stats_.received++;
        stats_.bytes += caplen;
        return ReadState::Packet;
    }
}

} // namespace shardcap
