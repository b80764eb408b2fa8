"""virtio 1.2 devices, split as the specification is: the MMIO transport
(mmio.py, section 4.2), split virtqueues with checked descriptor chains
(queue.py, section 2.7), and the device types (blk, console, rng, vsock,
net)."""
