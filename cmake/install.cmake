# cmake --install BUILD --prefix P: the SDK (the client library and the
# participant library with EmbeddedAgent and the built-in resources), its
# headers, a CMake package (find_package(txcoord CONFIG): txcoord::client,
# txcoord::participant), a pkg-config file (txcoord.pc) and the programs.
# Everything installed is relative to P: no path of the source or build tree
# is written into it, so the tree can be moved or packaged.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(TXC_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/txcoord)
set(TXC_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/txcoord)

# The libraries a user links, and the ones they pull in (static libraries:
# every one is installed and exported). Exported as txcoord::<name>.
set(TXC_EXPORTED_LIBS txc_core txc_proto txc_wal txc_resource txc_participant txc_client)
foreach(lib ${TXC_EXPORTED_LIBS})
  string(REPLACE "txc_" "" export_name ${lib})
  set_target_properties(${lib} PROPERTIES EXPORT_NAME ${export_name})
  # The libraries are built as C++20 and their headers use it: a consumer
  # compiles them the same way.
  target_compile_features(${lib} INTERFACE cxx_std_20)
  # A sanitized build's libraries need the sanitizer's runtime wherever they
  # are linked (the build tree links with it everywhere already).
  if(TXC_SANITIZE)
    target_link_options(${lib} INTERFACE $<INSTALL_INTERFACE:-fsanitize=${TXC_SANITIZE}>)
  endif()
endforeach()

# The public headers, at their paths relative to the source root (so the
# installed ones include each other exactly as in the tree), and the Thrift
# types they name. Every header an installed one includes must be here:
# tests/integration/sdk_install_test.cc compiles a consumer against them.
set(TXC_PUBLIC_HEADERS
  client/client.h
  common/status.h common/time.h common/tls_config.h common/txid.h
  participant/embedded_agent.h participant/resource_manager.h)
foreach(h ${TXC_PUBLIC_HEADERS})
  get_filename_component(dir ${h} DIRECTORY)
  install(FILES ${CMAKE_SOURCE_DIR}/${h} DESTINATION ${TXC_INSTALL_INCLUDEDIR}/${dir})
endforeach()
# protocol/txcoord.thrift's generated headers (TXC_GEN_HDRS): the wire types,
# and the services' Thrift clients for a caller that speaks the protocol itself.
install(FILES ${TXC_GEN_HDRS} DESTINATION ${TXC_INSTALL_INCLUDEDIR})

install(TARGETS ${TXC_EXPORTED_LIBS} EXPORT txcoordTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${TXC_INSTALL_INCLUDEDIR})
install(EXPORT txcoordTargets NAMESPACE txcoord:: DESTINATION ${TXC_INSTALL_CMAKEDIR})
# The config finds the libraries' dependencies for the user (the exported
# targets name Boost::, PkgConfig::, spdlog:: and Threads:: targets).
install(FILES ${CMAKE_SOURCE_DIR}/cmake/txcoordConfig.cmake DESTINATION ${TXC_INSTALL_CMAKEDIR})
# 0.x: a minor version may change the API, so only the same minor matches.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/txcoordConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/txcoordConfigVersion.cmake DESTINATION ${TXC_INSTALL_CMAKEDIR})

# txcoord.pc: its prefix is found from where the file lies (${pcfiledir}),
# since the prefix is chosen at install time, not here.
file(RELATIVE_PATH TXC_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" TXC_PC_TO_PREFIX "${TXC_PC_TO_PREFIX}")
set(TXC_PC_SANITIZE "")
if(TXC_SANITIZE)
  set(TXC_PC_SANITIZE "-fsanitize=${TXC_SANITIZE}")
endif()
configure_file(${CMAKE_SOURCE_DIR}/cmake/txcoord.pc.in ${CMAKE_BINARY_DIR}/txcoord.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/txcoord.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The programs (not txsim, the tests or their support).
install(TARGETS txcoord txagent txadmin txbench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
