# Fallback build with node-gyp (`npm run build:native:gyp`): the same CPU
# sources and per-ISA flags as CMakeLists.txt (the main build, via cmake-js).
# The qlinear sources are built apart, with -ffp-contract=off as CMake builds
# them (scripts/gyp-sources.js).
{
  "variables": {
    "nm_x86": "<!(node -p \"['x64','ia32'].includes(process.arch) ? 1 : 0\")"
  },
  "target_defaults": {
    "include_dirs": ["csrc"],
    "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-Wno-unused-parameter"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++1y", "-std=gnu++17"],
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
    "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17"
    },
    "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1 } }
  },
  "targets": [
    {
      "target_name": "nm_avx2",
      "type": "static_library",
      "sources": ["<!@(node scripts/gyp-sources.js avx2 rest)"],
      "conditions": [["nm_x86==1", { "cflags_cc": ["-mavx2", "-mfma", "-mf16c"] }]]
    },
    {
      "target_name": "nm_avx2_qlinear",
      "type": "static_library",
      "sources": ["<!@(node scripts/gyp-sources.js avx2 qlinear)"],
      "cflags_cc": ["-ffp-contract=off"],
      "conditions": [["nm_x86==1", { "cflags_cc": ["-mavx2", "-mfma", "-mf16c"] }]]
    },
    {
      "target_name": "nm_avx512",
      "type": "static_library",
      "sources": ["<!@(node scripts/gyp-sources.js avx512 rest)"],
      "conditions": [["nm_x86==1", {
        "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma", "-mf16c", "-Wno-maybe-uninitialized"]
      }]]
    },
    {
      "target_name": "nm_avx512_qlinear",
      "type": "static_library",
      "sources": ["<!@(node scripts/gyp-sources.js avx512 qlinear)"],
      "cflags_cc": ["-ffp-contract=off"],
      "conditions": [["nm_x86==1", {
        "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma", "-mf16c", "-Wno-maybe-uninitialized"]
      }]]
    },
    {
      "target_name": "nm_avx512vnni",
      "type": "static_library",
      "sources": ["<!@(node scripts/gyp-sources.js avx512vnni rest)"],
      "conditions": [["nm_x86==1", {
        "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512vnni", "-mavx512bf16", "-mavx2", "-mfma", "-mf16c", "-Wno-maybe-uninitialized"]
      }]]
    },
    {
      "target_name": "nm_avx512vnni_qlinear",
      "type": "static_library",
      "sources": ["<!@(node scripts/gyp-sources.js avx512vnni qlinear)"],
      "cflags_cc": ["-ffp-contract=off"],
      "conditions": [["nm_x86==1", {
        "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512vnni", "-mavx512bf16", "-mavx2", "-mfma", "-mf16c", "-Wno-maybe-uninitialized"]
      }]]
    },
    {
      "target_name": "nm_base_qlinear",
      "type": "static_library",
      "sources": ["<!@(node scripts/gyp-sources.js base qlinear)"],
      "cflags_cc": ["-ffp-contract=off"]
    },
    {
      "target_name": "node_mamba",
      "sources": ["<!@(node scripts/gyp-sources.js base rest)"],
      "dependencies": ["nm_avx2", "nm_avx512", "nm_avx512vnni", "nm_avx2_qlinear", "nm_avx512_qlinear",
                       "nm_avx512vnni_qlinear", "nm_base_qlinear"],
      "libraries": ["-lpthread"]
    }
  ]
}
