// Placeholder: the implementation lands with its tests.
#include "transport/aws/http_pool.h"
