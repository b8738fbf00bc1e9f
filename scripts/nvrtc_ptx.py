#!/usr/bin/env python3
"""Compiles kernels/*.cu to PTX with NVRTC (ctypes; no nvcc needed).

usage: nvrtc_ptx.py LIBNVRTC ARCH OUT_DIR FILE.cu...

The kernel-argument header is handed to NVRTC in memory (as the Rust NVRTC fallback does
by substitution), so the PTX does not depend on where the sources live.
"""
import ctypes
import os
import sys


def check(lib, prog, rc, what):
    if rc != 0:
        msg = lib.nvrtcGetErrorString(rc)
        log = ""
        if prog is not None:
            n = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
            buf = ctypes.create_string_buffer(n.value)
            lib.nvrtcGetProgramLog(prog, buf)
            log = buf.value.decode()
        sys.exit(f"nvrtc: {what} failed: {msg.decode() if msg else rc}\n{log}")


def main():
    libpath, arch, out_dir, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    lib = ctypes.CDLL(libpath)
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    major, minor = ctypes.c_int(), ctypes.c_int()
    check(lib, None, lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
    print(f"NVRTC {major.value}.{minor.value}, {arch}")
    for path in files:
        kdir = os.path.dirname(path)
        header_name = b"eqflow_kernel_args.h"
        with open(os.path.join(kdir, "eqflow_kernel_args.h"), "rb") as f:
            header = f.read()
        with open(path, "rb") as f:
            src = f.read()
        name = os.path.basename(path).encode()
        prog = ctypes.c_void_p()
        hdrs = (ctypes.c_char_p * 1)(header)
        names = (ctypes.c_char_p * 1)(header_name)
        check(lib, None, lib.nvrtcCreateProgram(ctypes.byref(prog), src, name, 1, hdrs, names), f"{path}: create")
        opts = [f"--gpu-architecture={arch}".encode(), b"--std=c++17"]
        copts = (ctypes.c_char_p * len(opts))(*opts)
        check(lib, prog, lib.nvrtcCompileProgram(prog, len(opts), copts), f"{path}: compile")
        n = ctypes.c_size_t()
        check(lib, prog, lib.nvrtcGetPTXSize(prog, ctypes.byref(n)), f"{path}: PTX size")
        buf = ctypes.create_string_buffer(n.value)
        check(lib, prog, lib.nvrtcGetPTX(prog, buf), f"{path}: PTX")
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
        out = os.path.join(out_dir, os.path.basename(path)[:-3] + ".ptx")
        with open(out, "wb") as f:
            f.write(buf.value)
        print(f"  {path} -> {out} ({len(buf.value)} bytes)")


if __name__ == "__main__":
    main()
