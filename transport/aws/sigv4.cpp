// Placeholder: the implementation lands with its tests.
#include "transport/aws/sigv4.h"
