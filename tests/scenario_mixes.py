"""Fault mixes shared by the simulator and diagnosis tests."""

#: every fault on a node of its own (16 nodes): crowding must not change any single diagnosis
ALL_AT_ONCE = [
    "xid79-fell-off-bus@node-0/gpu-1", "hbm-uncorrectable@node-1/gpu-2", "row-remap-failure@node-2/gpu-3",
    "ecc-correctable-storm@node-3/gpu-4", "nvlink-degraded@node-4/gpu-5", "thermal-throttle@node-5/gpu-6",
    "power-brake@node-6/gpu-7", "pcie-degraded@node-7/gpu-0", "gsp-hang@node-8/gpu-1", "host-down@node-9",
    "ib-flap@node-10", "straggler@node-11/gpu-2", "app-xid@node-12/gpu-3", "pending-on-drained@node-13",
    "idle-allocated@node-14/gpu-0",
]
