{
  "targets": [
    {
      "target_name": "fedkeeper_native",
      "sources": ["src/fedkeeper_native.cc"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": [
        "-O3",
        "-std=c++17",
        "-ffp-contract=off",
        "-fno-fast-math",
        "-fno-math-errno",
        "-Wall",
        "-Wno-unused-parameter",
        "<!@(pkg-config --cflags-only-I openblas 2>/dev/null || true)"
      ],
      "libraries": ["<!@(pkg-config --libs openblas 2>/dev/null || echo -lopenblas)", "-lpthread"]
    }
  ]
}
