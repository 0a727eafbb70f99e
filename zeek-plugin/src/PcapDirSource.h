// The `pcapdir` packet source: a thin Zeek glue around SpoolReader (spool_reader.h), which does
// all the spool reading.

#pragma once

#include <zeek/iosource/PktSrc.h>

#include <cstdint>
#include <string>

#include "spool_reader.h"

namespace shardcap::zeek_glue {

class PcapDirSource : public zeek::iosource::PktSrc {
public:
    PcapDirSource(const std::string& path, bool is_live);
    ~PcapDirSource() override;

    // Factory for the PktSrcComponent.
    static zeek::iosource::PktSrc* Instantiate(const std::string& path, bool is_live);

    // BPF filters: PrecompileFilter() is PktSrc's (libpcap's compiler); SetFilter() picks the one
    // ExtractNextPacket() applies.
    bool SetFilter(int index) override;
    void Statistics(Stats* stats) override;
    // 0 while packets are at hand; kPollMs while waiting for a segment: the main loop sleeps until
    // the spool's inotify descriptor (the selectable fd, if any) or the timer descriptor (every
    // kPollMs) wakes it.
    double GetNextTimeout() override;

protected:
    void Open() override;
    void Close() override;
    bool ExtractNextPacket(zeek::Packet* pkt) override;
    void DoneWithPacket() override;

private:
    void Fail(const std::string& msg);

    Properties props;
    SpoolReader reader;
    int filter = -1;
    int tick_fd = -1; // a timerfd firing every kPollMs
    bool waiting = false;
    uint64_t received = 0;
    uint64_t bytes = 0;
    uint64_t filtered = 0;
};

} // namespace shardcap::zeek_glue
