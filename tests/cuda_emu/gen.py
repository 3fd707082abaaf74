"""Rewrites a CUDA kernel file of src/backend/cuda into C++ that runs under
tests/cuda_emu/emu.h: launches become emu_launch calls, kernels plain
functions. Usage: gen.py IN.cu OUT.cpp"""
import re, sys
src = open(sys.argv[1]).read()
src = src.replace('extern __shared__ float2 affine[];', 'float2 *affine = (float2 *)emu_dyn_smem;')
src = re.sub(r'([A-Za-z_][A-Za-z_0-9]*(?:<[A-Z_]+>)?)<<<(.*?)>>>\(', r'emu_launch(EmuCfg{\2}, \1, ', src, flags=re.S)
src = src.replace('static __global__ void', 'static void')
src = src.replace('cudaGetLastError()', 'emu_last_error()')  # not the runtime's
assert '<<<' not in src and '__global__' not in src
open(sys.argv[2], 'w').write('#include "emu.h"\n' + src)
