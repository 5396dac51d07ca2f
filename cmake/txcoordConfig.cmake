# txcoord's CMake package (installed by cmake/install.cmake):
#
#   find_package(txcoord 0.9 CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE txcoord::client)       # txc::Client
#   target_link_libraries(agent PRIVATE txcoord::participant) # EmbeddedAgent, ResourceManager
#
# The libraries are static, so their dependencies are found here, for the
# user, exactly as txcoord's own build found them (CMakeLists.txt): the
# exported targets name Threads::Threads, Boost::, spdlog:: and the
# PkgConfig:: targets created below.
include(CMakeFindDependencyMacro)

find_dependency(Threads)
find_dependency(Boost 1.74 COMPONENTS program_options)
find_dependency(spdlog)  # and, through spdlog's own package, fmt
find_dependency(OpenSSL 3)  # TLS in the RPC layer (Debian 12: libssl-dev)

# Thrift, SQLite, libpq and MariaDB Connector/C come with pkg-config files
# only (Debian 12: libthrift-dev, libsqlite3-dev, libpq-dev, libmariadb-dev).
find_dependency(PkgConfig)
foreach(txc_dep "THRIFT|thrift>=0.17" "SQLITE3|sqlite3" "PQ|libpq" "MARIADB|libmariadb")
  string(REPLACE "|" ";" txc_dep "${txc_dep}")
  list(GET txc_dep 0 txc_prefix)
  list(GET txc_dep 1 txc_module)
  # A project that made the target already (the same pkg_check_modules call) keeps it.
  if(NOT TARGET PkgConfig::${txc_prefix})
    pkg_check_modules(${txc_prefix} QUIET IMPORTED_TARGET ${txc_module})
    if(NOT ${txc_prefix}_FOUND)
      set(txcoord_FOUND FALSE)
      string(CONCAT txcoord_NOT_FOUND_MESSAGE
             "txcoord needs ${txc_module}, which pkg-config does not find (install its -dev "
             "package, or add the directory of its .pc file to PKG_CONFIG_PATH)")
      return()
    endif()
  endif()
endforeach()
unset(txc_dep)
unset(txc_prefix)
unset(txc_module)

include("${CMAKE_CURRENT_LIST_DIR}/txcoordTargets.cmake")
