{
  # The native compute addon: oneDNN convolutions plus fused BatchNorm/ReLU, pooling and dense kernels
  # on the tfjs 'cpu' backend's Float32Arrays. Built by scripts/build-native.js at `npm install`; a
  # failed build (e.g. no libdnnl-dev) leaves cigl on stock tfjs.
  "targets": [
    {
      "target_name": "cigl_native",
      "sources": [
        "src/addon.cc",
        "src/conv.cc",
        "src/batchnorm.cc",
        "src/pointwise.cc",
        "src/dense.cc",
        "src/lanes.cc",
        "src/sparse_conv.cc",
        "src/sgd.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS"],
      # Baseline x86-64 code: hot loops are compiled per ISA with target_clones and oneDNN dispatches
      # at run time, so the addon runs (fast) on AVX-512 machines and (correctly) on older ones.
      "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-psabi"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++14", "-std=gnu++17"],
      "cflags!": ["-fno-exceptions"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-ldnnl", "-lgomp"]
    }
  ]
}
