// The `pcapdir` packet source (see PcapDirSource.h).

#include "PcapDirSource.h"

#include <pcap.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <zeek/ID.h>
#include <zeek/iosource/Manager.h>
#include <zeek/Reporter.h>
#include <zeek/RunState.h>
#include <zeek/Val.h>
#include <zeek/iosource/Packet.h>

namespace shardcap::zeek_glue {

namespace {

// The script option PcapDir::keep_consumed (scripts/__load__.zeek): rename consumed segments to
// NAME.done instead of removing them.
bool keep_consumed() {
    const auto& id = zeek::id::find("PcapDir::keep_consumed");
    return id && id->GetVal() && id->GetVal()->AsBool();
}

SpoolOptions options() {
    SpoolOptions o;
    o.keep_done = keep_consumed();
    // Test hook (README, "Waking up"): SHARDCAP_PCAPDIR_NO_INOTIFY=1 makes the source poll as it
    // does when no inotify instance can be had.
    const char* no_inotify = std::getenv("SHARDCAP_PCAPDIR_NO_INOTIFY");
    o.use_inotify = ! (no_inotify && *no_inotify && std::string(no_inotify) != "0");
    return o;
}

} // namespace

PcapDirSource::PcapDirSource(const std::string& path, bool is_live) : reader(options()) {
    props.path = path;
    props.is_live = is_live;
}

PcapDirSource::~PcapDirSource() { Close(); }

zeek::iosource::PktSrc* PcapDirSource::Instantiate(const std::string& path, bool is_live) {
    return new PcapDirSource(path, is_live);
}

void PcapDirSource::Open() {
    if ( ! reader.open(props.path) ) {
        Error(reader.error());
        return;
    }
    // The link type comes from the first segment: wait for it (or for an empty, finished spool).
    // Zeek installs its signal handlers only after opening the source, so SIGTERM still ends a
    // Zeek waiting here.
    ReadState state;
    bool told = false;
    while ( (state = reader.start()) == ReadState::Wait ) {
        if ( ! told ) {
            Info(props.path + ": waiting for the first segment");
            told = true;
        }
        reader.wait(1000);
    }
    if ( state == ReadState::Error ) {
        Error(reader.error());
        return;
    }
    props.link_type = state == ReadState::End ? DLT_EN10MB : static_cast<int>(reader.info().linktype);
    props.selectable_fd = reader.wait_fd();
    props.netmask = NETMASK_UNKNOWN;
    props.is_live = false;
    Opened(props);
    // Zeek wakes a source on its timeout only when no other source has a shorter one, so the
    // bounded GetNextTimeout() alone does not make it look again: a periodic timer descriptor
    // does, whether inotify is missing (no instance left) or silent (NFS).
    tick_fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec every = {};
    every.it_interval.tv_nsec = every.it_value.tv_nsec = kPollMs * 1000000L;
    if ( tick_fd < 0 || ::timerfd_settime(tick_fd, 0, &every, nullptr) != 0 ||
         ! zeek::iosource_mgr->RegisterFd(tick_fd, this) ) {
        Error(props.path + ": cannot set up the timer that wakes the source");
        return;
    }
}

void PcapDirSource::Close() {
    if ( tick_fd >= 0 ) {
        zeek::iosource_mgr->UnregisterFd(tick_fd, this);
        ::close(tick_fd);
        tick_fd = -1;
    }
    if ( ! IsOpen() )
        return;
    Closed();
}

void PcapDirSource::Fail(const std::string& msg) {
    // Reported now (PktSrc::Error only records it), then the trace ends so Zeek writes its logs.
    // Zeek still exits 0 then, so the error marker beside the shard directory is what tells
    // shardcap (and anyone else) that the stream was not complete.
    zeek::reporter->Error("%s", msg.c_str());
    const std::string marker = reader.error_marker();
    if ( FILE* f = std::fopen(marker.c_str(), "w") ) {
        std::fprintf(f, "%s\n", msg.c_str());
        std::fclose(f);
    }
    else
        zeek::reporter->Error("%s: cannot write the error marker", marker.c_str());
    Error(msg);
    Close();
}

bool PcapDirSource::ExtractNextPacket(zeek::Packet* pkt) {
    if ( ! IsOpen() )
        return false;
    uint64_t ticks;
    while ( tick_fd >= 0 && ::read(tick_fd, &ticks, sizeof(ticks)) > 0 ) {
    }
    PacketView v;
    for ( ;; ) {
        switch ( reader.next(&v) ) {
            case ReadState::Packet: break;
            case ReadState::Wait: waiting = true; return false;
            case ReadState::End: Close(); return false;
            case ReadState::Error: Fail(reader.error()); return false;
        }
        waiting = false;
        pkt_timeval ts = {static_cast<time_t>(v.ts_sec), static_cast<suseconds_t>(v.ts_nsec / 1000)};
        if ( v.caplen == 0 || v.len == 0 ) {
            // As Zeek's own pcap source does: a weird, and the record is not a packet.
            pkt->Init(props.link_type, &ts, v.caplen, v.len, v.data);
            Weird("empty_pcap_header", pkt);
            return false;
        }
        if ( filter >= 0 ) {
            struct pcap_pkthdr hdr;
            hdr.ts = ts;
            hdr.caplen = v.caplen;
            hdr.len = v.len;
            if ( ! ApplyBPFFilter(filter, &hdr, v.data) ) {
                if ( ! IsOpen() )
                    return false;
                filtered++;
                continue;
            }
        }
        pkt->Init(props.link_type, &ts, v.caplen, v.len, v.data);
        received++;
        bytes += v.len;
        return true;
    }
}

void PcapDirSource::DoneWithPacket() {
    // The packet's data stays mapped until the next ExtractNextPacket(); SpoolReader releases (and
    // removes) a segment only then.
}

bool PcapDirSource::SetFilter(int index) {
    if ( ! GetBPFFilter(index) ) {
        Error("no precompiled filter for index " + std::to_string(index));
        return false;
    }
    filter = index;
    return true;
}

void PcapDirSource::Statistics(Stats* s) {
    s->received = received;
    s->bytes_received = bytes;
    s->dropped = 0;
    s->link = reader.stats().received; // every record read, empty ones included
    s->filtered = filtered;
}

double PcapDirSource::GetNextTimeout() {
    // While waiting for a segment the inotify descriptor (if any) wakes Zeek; the bounded timeout
    // makes it look again anyway, for a reader without inotify and for changes inotify does not
    // see (NFS).
    if ( waiting )
        return kPollMs / 1000.0;
    if ( zeek::run_state::is_processing_suspended() )
        return -1;
    if ( zeek::run_state::pseudo_realtime > 0 )
        return PktSrc::GetNextTimeout();
    return 0;
}

} // namespace shardcap::zeek_glue
