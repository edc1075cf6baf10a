"""Machine images (EMI), kernels (EKI) and ramdisks (ERI): bundles, registration, import."""
