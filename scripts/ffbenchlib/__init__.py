"""Python side of ffbench: reads what the C++ programs write (HDF5), never their stdout."""
