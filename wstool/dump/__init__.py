"""``wstool frame-dump``: the live relay and the offline/pcap front-end.

``events`` ← ``relay`` (forwards bytes unchanged, decodes a copy) ← ``frontend``.
"""
