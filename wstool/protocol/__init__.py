"""Sans-I/O code: bytes in, frames or bytes out; no event loop, no terminal.

``frames`` (the decoder that never refuses a frame), ``echo`` (the strict echo
engine), ``deflate`` (the permessage-deflate policy), ``pcap`` (capture files and
TCP reassembly), ``internals`` (every use of websockets' private API, fenced).
"""
