find_package(PkgConfig)

PKG_CHECK_MODULES(PC_GR_AMCEE gnuradio-amcee)

FIND_PATH(
    GR_AMCEE_INCLUDE_DIRS
    NAMES gnuradio/amcee/api.h
    HINTS $ENV{AMCEE_DIR}/include
        ${PC_AMCEE_INCLUDEDIR}
    PATHS ${CMAKE_INSTALL_PREFIX}/include
          /usr/local/include
          /usr/include
)

FIND_LIBRARY(
    GR_AMCEE_LIBRARIES
    NAMES gnuradio-amcee
    HINTS $ENV{AMCEE_DIR}/lib
        ${PC_AMCEE_LIBDIR}
    PATHS ${CMAKE_INSTALL_PREFIX}/lib
          ${CMAKE_INSTALL_PREFIX}/lib64
          /usr/local/lib
          /usr/local/lib64
          /usr/lib
          /usr/lib64
          )

include("${CMAKE_CURRENT_LIST_DIR}/gnuradio-amceeTarget.cmake")

INCLUDE(FindPackageHandleStandardArgs)
FIND_PACKAGE_HANDLE_STANDARD_ARGS(GR_AMCEE DEFAULT_MSG GR_AMCEE_LIBRARIES GR_AMCEE_INCLUDE_DIRS)
MARK_AS_ADVANCED(GR_AMCEE_LIBRARIES GR_AMCEE_INCLUDE_DIRS)
