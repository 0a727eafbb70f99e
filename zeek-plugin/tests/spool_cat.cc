// spool_cat [--keep-done] DIR OUT.pcap
//
// Reads the spool shard DIR with SpoolReader until its end marker and writes its packets as one
// little-endian pcap file (the first segment's link type, snapshot length and precision). OUT is
// written as OUT.partial and renamed when the stream is complete; on error the message (naming
// the segment and byte offset) goes to stderr, the exit status is 1 and OUT.partial holds the
// packets read before the error.

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "spool_reader.h"

using shardcap::PacketView;
using shardcap::ReadState;
using shardcap::SpoolReader;

namespace {

void put32(std::FILE* f, uint32_t v) {
    uint8_t b[4] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v >> 16),
                    static_cast<uint8_t>(v >> 24)};
    std::fwrite(b, 1, 4, f);
}

void put16(std::FILE* f, uint16_t v) {
    uint8_t b[2] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8)};
    std::fwrite(b, 1, 2, f);
}

int usage() {
    std::fprintf(stderr, "usage: spool_cat [--keep-done] DIR OUT.pcap\n");
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    shardcap::SpoolOptions options;
    std::vector<std::string> args;
    for ( int i = 1; i < argc; i++ ) {
        if ( std::strcmp(argv[i], "--keep-done") == 0 )
            options.keep_done = true;
        else
            args.emplace_back(argv[i]);
    }
    if ( args.size() != 2 )
        return usage();
    const std::string& out_path = args[1];
    const std::string partial = out_path + ".partial";

    SpoolReader reader(options);
    if ( ! reader.open(args[0]) ) {
        std::fprintf(stderr, "spool_cat: %s\n", reader.error().c_str());
        return 1;
    }
    ReadState state;
    while ( (state = reader.start()) == ReadState::Wait )
        reader.wait(1000);
    if ( state == ReadState::Error ) {
        std::fprintf(stderr, "spool_cat: %s\n", reader.error().c_str());
        return 1;
    }

    std::FILE* out = std::fopen(partial.c_str(), "wb");
    if ( ! out ) {
        std::perror(partial.c_str());
        return 1;
    }
    static char buffer[1 << 20];
    std::setvbuf(out, buffer, _IOFBF, sizeof(buffer));
    // A stream that ended before any segment has no header to copy: Ethernet, microseconds.
    const shardcap::StreamInfo info =
        state == ReadState::End ? shardcap::StreamInfo{1, 262144, false} : reader.info();
    put32(out, info.nanos ? 0xa1b23c4d : 0xa1b2c3d4);
    put16(out, 2);
    put16(out, 4);
    put32(out, 0);
    put32(out, 0);
    put32(out, info.snaplen);
    put32(out, info.linktype);

    PacketView pkt;
    while ( (state = reader.next(&pkt)) != ReadState::End ) {
        if ( state == ReadState::Wait ) {
            std::fflush(out);
            reader.wait(1000);
            continue;
        }
        if ( state == ReadState::Error ) {
            std::fclose(out);
            std::fprintf(stderr, "spool_cat: %s\n", reader.error().c_str());
            return 1;
        }
        put32(out, pkt.ts_sec);
        put32(out, info.nanos ? pkt.ts_nsec : pkt.ts_nsec / 1000);
        put32(out, pkt.caplen);
        put32(out, pkt.len);
        std::fwrite(pkt.data, 1, pkt.caplen, out);
    }
    if ( std::fclose(out) != 0 || std::rename(partial.c_str(), out_path.c_str()) != 0 ) {
        std::perror(out_path.c_str());
        return 1;
    }
    const auto& st = reader.stats();
    std::fprintf(stderr, "spool_cat: %llu packets (%llu bytes) from %llu segments\n",
                 static_cast<unsigned long long>(st.received), static_cast<unsigned long long>(st.bytes),
                 static_cast<unsigned long long>(st.segments));
    return 0;
}
