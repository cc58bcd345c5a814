// PER_CPU_CLONES: on x86-64 with GCC, compile a function for AVX-512, AVX2 and plain x86-64 and choose the one the
// CPU supports when the library loads, so that a build cached on one machine never runs instructions another lacks;
// elsewhere (ARM, clang) the function is compiled once for the machine's baseline.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__ELF__)
#define PER_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PER_CPU_CLONES
#endif
