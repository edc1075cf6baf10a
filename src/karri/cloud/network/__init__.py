"""The network model of the cloud (issue 15): VPCs and their parts, security groups,
public addresses, network interfaces. The plumbing that makes it real is the node's
(``karri.node``): this package decides, the node enforces."""
