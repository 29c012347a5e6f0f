// Placeholder: the implementation lands with its tests.
#include "transport/aws/credentials.h"
