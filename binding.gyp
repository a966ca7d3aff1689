{
  "targets": [
    {
      # The portable user-client core, built exactly as the kext needs it: no exceptions,
      # no RTTI, no C++ standard library headers. If it compiles here, the rule holds.
      "target_name": "kextbridge_core",
      "type": "static_library",
      "sources": [
        "kext-sample/core/ledger.cpp",
        "kext-sample/core/open_limit.cpp",
        "kext-sample/core/user_client_core.cpp"
      ],
      "include_dirs": ["kext-sample/core"],
      # -flto (Linux builds; the Mac build does not set it): the sync path crosses the core, the
      # transport and the simulated kernel, and link-time inlining across them is a measured
      # part of its cost (README "Performance").
      "cflags_cc": ["-std=c++17", "-fno-exceptions", "-fno-rtti", "-nostdinc++", "-Wall", "-Wextra", "-Werror", "-flto"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "NO",
        "GCC_ENABLE_CPP_RTTI": "NO",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "MACOSX_DEPLOYMENT_TARGET": "11.0",
        "OTHER_CPLUSPLUSFLAGS": ["-nostdinc++", "-Wall", "-Wextra", "-Werror"]
      }
    },
    {
      "target_name": "kextbridge",
      # native/: N-API only. bridge/: transports, jobs and the serial queue (no napi.h).
      # sim/: the simulated kernel. Includes point down: native → bridge → core, sim.
      "sources": [
        "native/addon.cc",
        "native/connection.cc",
        "native/job_js.cc",
        "native/js_values.cc",
        "native/sim_kernel_wrap.cc",
        "bridge/job.cc",
        "bridge/resource_job.cc",
        "bridge/serial_queue.cc",
        "bridge/sim_transport.cc",
        "sim/sim_kernel.cpp"
      ],
      "include_dirs": ["native", "bridge", "sim", "kext-sample/core"],
      "dependencies": [
        "kextbridge_core",
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-fvisibility=hidden", "-Wall", "-Wextra", "-flto"],
      "ldflags": ["-flto=auto"],
      "xcode_settings": {
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "GCC_SYMBOLS_PRIVATE_EXTERN": "YES",
        "MACOSX_DEPLOYMENT_TARGET": "11.0"
      },
      "conditions": [
        ["OS=='mac'", {
          # The real transport exists only on macOS; elsewhere openIOKit() answers
          # kIOReturnUnsupported and open() uses the simulator.
          "sources": ["bridge/iokit_transport.cc"],
          "defines": ["KB_HAVE_IOKIT=1"],
          "link_settings": {
            "libraries": ["-framework IOKit", "-framework CoreFoundation"]
          },
          # No ARCHS: node-gyp's make generator cannot build several at once (it falls back
          # to i386); each build targets its host, as Node itself does.
          "xcode_settings": {
            "OTHER_CPLUSPLUSFLAGS": ["-Wunguarded-availability"]
          }
        }]
      ],
      # node-addon-api's except.gypi (a direct_dependent_setting of node_addon_api_except)
      # sets MACOSX_DEPLOYMENT_TARGET 10.7, merged over this target's own 11.0 after
      # "conditions" ran; compile and link both followed it (the addon claimed macOS 10.7).
      # target_conditions run after that merge, so 11.0 wins for both. OTHER_LDFLAGS cannot
      # do it: gyp puts them before the deployment target on the link line.
      # scripts/gyp-mac-check.sh checks the compile and link lines.
      "target_conditions": [
        ["OS=='mac'", {
          "xcode_settings": { "MACOSX_DEPLOYMENT_TARGET": "11.0" }
        }]
      ]
    }
  ]
}
