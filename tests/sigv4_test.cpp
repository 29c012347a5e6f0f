// SigV4: the published AWS Signature Version 4 test suite (docs.aws.amazon.com/general/latest/
// gr/signature-v4-test-suite.html, as kept in awslabs/aws-c-auth tests/aws-signing-test-suite/
// v4): each request's canonical request, string to sign and Authorization byte for byte; then
// the header set a DynamoDB call signs, and the small helpers.
#include "transport/aws/sigv4.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace heartbeatd::transport::aws {
namespace {

// The suite's fixed inputs.
constexpr const char* kAccessKeyId = "AKIDEXAMPLE";
constexpr const char* kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr const char* kRegion = "us-east-1";
constexpr const char* kService = "service";
constexpr const char* kAmzDate = "20150830T123600Z";

struct Vector {
  const char* name;
  const char* method;
  const char* path;
  const char* query;
  std::vector<std::pair<std::string, std::string>> headers;
  const char* payload;
  const char* session_token;
  // Expected, from the suite's header-canonical-request.txt, header-string-to-sign.txt and
  // the Authorization line of header-signed-request.txt.
  const char* canonical_request;
  const char* string_to_sign;
  const char* authorization;
};

// Inputs are the suite's request.txt: the path and query as on the request line (raw UTF-8
// where the suite has it), the headers as sent (values with the whitespace after the colon).
// post-x-www-form-urlencoded is the body-signing variant (x-amz-content-sha256 sent and
// signed), as the suite has it.
const std::vector<Vector>& suite() {
  static const std::vector<Vector> vectors = {
      {"get-vanilla",
       "GET",
       "/",
       "",
       {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
       "",
       "",
       "GET\n"
       "/\n"
       "\n"
       "host:example.amazonaws.com\n"
       "x-amz-date:20150830T123600Z\n"
       "\n"
       "host;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;x-amz-date, "
       "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"get-vanilla-query-order-key-case",
       "GET",
       "/",
       "Param2=value2&Param1=value1",
       {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
       "",
       "",
       "GET\n"
       "/\n"
       "Param1=value1&Param2=value2\n"
       "host:example.amazonaws.com\n"
       "x-amz-date:20150830T123600Z\n"
       "\n"
       "host;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;x-amz-date, "
       "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
      {"get-vanilla-query-order-encoded",
       "GET",
       "/",
       "Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
       {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
       "",
       "",
       "GET\n"
       "/\n"
       "%E1%88%B4=Value1&Param=Value2&Param-3=Value3\n"
       "host:example.amazonaws.com\n"
       "x-amz-date:20150830T123600Z\n"
       "\n"
       "host;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "868294f5c38bd141c4972a373a76654f1418a8e4fc18b2e7903ae45e8ae0ec71",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;x-amz-date, "
       "Signature=371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac"},
      {"get-vanilla-utf8-query",
       "GET",
       "/",
       "\xE1"
       "\x88"
       "\xB4"
       "=bar",
       {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
       "",
       "",
       "GET\n"
       "/\n"
       "%E1%88%B4=bar\n"
       "host:example.amazonaws.com\n"
       "x-amz-date:20150830T123600Z\n"
       "\n"
       "host;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;x-amz-date, "
       "Signature=2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
      {"get-header-value-trim",
       "GET",
       "/",
       "",
       {{"Host", "example.amazonaws.com"},
        {"My-Header1", " value1"},
        {"My-Header2", " \"a   b   c\""},
        {"X-Amz-Date", "20150830T123600Z"}},
       "",
       "",
       "GET\n"
       "/\n"
       "\n"
       "host:example.amazonaws.com\n"
       "my-header1:value1\n"
       "my-header2:\"a b c\"\n"
       "x-amz-date:20150830T123600Z\n"
       "\n"
       "host;my-header1;my-header2;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;my-header1;my-header2;x-amz-date, "
       "Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
      {"get-header-key-duplicate",
       "GET",
       "/",
       "",
       {{"Host", "example.amazonaws.com"},
        {"My-Header1", "value2"},
        {"My-Header1", "value2"},
        {"My-Header1", "value1"},
        {"X-Amz-Date", "20150830T123600Z"}},
       "",
       "",
       "GET\n"
       "/\n"
       "\n"
       "host:example.amazonaws.com\n"
       "my-header1:value2,value2,value1\n"
       "x-amz-date:20150830T123600Z\n"
       "\n"
       "host;my-header1;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;my-header1;x-amz-date, "
       "Signature=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
      {"get-header-value-multiline",
       "GET",
       "/",
       "",
       {{"Host", "example.amazonaws.com"},
        {"My-Header1",
         "value1\n"
         "  value2\n"
         "     value3"},
        {"X-Amz-Date", "20150830T123600Z"}},
       "",
       "",
       "GET\n"
       "/\n"
       "\n"
       "host:example.amazonaws.com\n"
       "my-header1:value1 value2 value3\n"
       "x-amz-date:20150830T123600Z\n"
       "\n"
       "host;my-header1;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "e99419459a677bc11de234014be3c4e72c1ea5b454ceb58b613061f5d7a162e8",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;my-header1;x-amz-date, "
       "Signature=cfd34249e4b1c8d6b91ef74165d41a32e5fab3306300901bb65a51a73575eefd"},
      {"get-unreserved",
       "GET",
       "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
       "",
       {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
       "",
       "",
       "GET\n"
       "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n"
       "\n"
       "host:example.amazonaws.com\n"
       "x-amz-date:20150830T123600Z\n"
       "\n"
       "host;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;x-amz-date, "
       "Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
      {"get-utf8",
       "GET",
       "/\xE1"
       "\x88"
       "\xB4"
       "",
       "",
       {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
       "",
       "",
       "GET\n"
       "/%E1%88%B4\n"
       "\n"
       "host:example.amazonaws.com\n"
       "x-amz-date:20150830T123600Z\n"
       "\n"
       "host;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;x-amz-date, "
       "Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
      {"get-space-normalized",
       "GET",
       "/example space/",
       "",
       {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
       "",
       "",
       "GET\n"
       "/example%20space/\n"
       "\n"
       "host:example.amazonaws.com\n"
       "x-amz-date:20150830T123600Z\n"
       "\n"
       "host;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;x-amz-date, "
       "Signature=652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
      {"get-slashes-normalized",
       "GET",
       "//example//",
       "",
       {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
       "",
       "",
       "GET\n"
       "/example/\n"
       "\n"
       "host:example.amazonaws.com\n"
       "x-amz-date:20150830T123600Z\n"
       "\n"
       "host;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "cb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;x-amz-date, "
       "Signature=9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"},
      {"get-relative-relative-normalized",
       "GET",
       "/example1/example2/../..",
       "",
       {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
       "",
       "",
       "GET\n"
       "/\n"
       "\n"
       "host:example.amazonaws.com\n"
       "x-amz-date:20150830T123600Z\n"
       "\n"
       "host;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;x-amz-date, "
       "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"post-vanilla",
       "POST",
       "/",
       "",
       {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
       "",
       "",
       "POST\n"
       "/\n"
       "\n"
       "host:example.amazonaws.com\n"
       "x-amz-date:20150830T123600Z\n"
       "\n"
       "host;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;x-amz-date, "
       "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
      {"post-x-www-form-urlencoded",
       "POST",
       "/",
       "",
       {{"Content-Type", "application/x-www-form-urlencoded"},
        {"Host", "example.amazonaws.com"},
        {"Content-Length", "13"},
        {"X-Amz-Date", "20150830T123600Z"},
        {"x-amz-content-sha256",
         "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"}},
       "Param1=value1",
       "",
       "POST\n"
       "/\n"
       "\n"
       "content-length:13\n"
       "content-type:application/x-www-form-urlencoded\n"
       "host:example.amazonaws.com\n"
       "x-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\n"
       "x-amz-date:20150830T123600Z\n"
       "\n"
       "content-length;content-type;host;x-amz-content-sha256;x-amz-date\n"
       "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "b1edd1d03544c25390e32085d55b57acc9a3961bb59415ff86c45c3d89d16cfb",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, "
       "Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"},
      {"get-vanilla-with-session-token",
       "GET",
       "/",
       "",
       {{"Host", "example.amazonaws.com"},
        {"X-Amz-Date", "20150830T123600Z"},
        {"X-Amz-Security-Token",
         "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"}},
       "",
       "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
       "GET\n"
       "/\n"
       "\n"
       "host:example.amazonaws.com\n"
       "x-amz-date:20150830T123600Z\n"
       "x-amz-security-token:6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267\n"
       "\n"
       "host;x-amz-date;x-amz-security-token\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "067b36aa60031588cea4a4cde1f21215227a047690c72247f1d70b32fbbfad2b",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;x-amz-date;x-amz-security-token, "
       "Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"},
      {"post-sts-header-before",
       "POST",
       "/",
       "",
       {{"Host", "example.amazonaws.com"},
        {"X-Amz-Security-Token",
         "AQoDYXdzEPT//////////"
         "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUu"
         "wthAx7mSEI/qkPpKPi/"
         "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8Y"
         "QcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"
         "scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="},
        {"X-Amz-Date", "20150830T123600Z"}},
       "",
       "AQoDYXdzEPT//////////"
       "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwt"
       "hAx7mSEI/qkPpKPi/"
       "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQc"
       "HNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"
       "scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==",
       "POST\n"
       "/\n"
       "\n"
       "host:example.amazonaws.com\n"
       "x-amz-date:20150830T123600Z\n"
       "x-amz-security-token:AQoDYXdzEPT//////////"
       "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwt"
       "hAx7mSEI/qkPpKPi/"
       "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQc"
       "HNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"
       "scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==\n"
       "\n"
       "host;x-amz-date;x-amz-security-token\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "AWS4-HMAC-SHA256\n"
       "20150830T123600Z\n"
       "20150830/us-east-1/service/aws4_request\n"
       "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;x-amz-date;x-amz-security-token, "
       "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"},
  };
  return vectors;
}

class SigV4Suite : public ::testing::TestWithParam<std::size_t> {};

TEST_P(SigV4Suite, MatchesPublishedVector) {
  const Vector& v = suite().at(GetParam());
  SCOPED_TRACE(v.name);
  RequestToSign request;
  request.method = v.method;
  request.path = v.path;
  request.query = v.query;
  request.headers = v.headers;
  request.payload = v.payload;
  Credentials credentials{kAccessKeyId, kSecret, v.session_token, std::nullopt, "test"};

  Signature s = sign_v4(request, credentials, kRegion, kService, kAmzDate);

  EXPECT_EQ(s.canonical_request, v.canonical_request);
  EXPECT_EQ(s.string_to_sign, v.string_to_sign);
  EXPECT_EQ(s.authorization, v.authorization);
  // The Authorization header ends with the signature itself.
  EXPECT_EQ(s.signature.size(), 64u);
  EXPECT_TRUE(std::string_view(s.authorization).ends_with("Signature=" + s.signature));
}

INSTANTIATE_TEST_SUITE_P(SigV4, SigV4Suite, ::testing::Range<std::size_t>(0, suite().size()),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           std::string name = suite().at(info.param).name;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

// What the DynamoDB store will send: the header set it signs, in the order AWS wants it.
TEST(SigV4, DynamoDbRequestSignsItsHeaders) {
  RequestToSign request;
  request.method = "POST";
  request.path = "/";
  request.headers = {
      {"Host", "dynamodb.eu-west-1.amazonaws.com"},
      {"Content-Type", "application/x-amz-json-1.0"},
      {"X-Amz-Target", "DynamoDB_20120810.BatchGetItem"},
      {"X-Amz-Date", "20261205T101500Z"},
      {"X-Amz-Security-Token", "tok+en/=="},
  };
  const std::string body = R"({"RequestItems":{"presence":{"Keys":[{"u":{"S":"alice"}}]}}})";
  request.payload = body;
  Credentials credentials{"AKIDEXAMPLE", kSecret, "tok+en/==", std::nullopt, "test"};

  Signature s = sign_v4(request, credentials, "eu-west-1", "dynamodb", "20261205T101500Z");

  EXPECT_EQ(s.canonical_request,
            "POST\n"
            "/\n"
            "\n"
            "content-type:application/x-amz-json-1.0\n"
            "host:dynamodb.eu-west-1.amazonaws.com\n"
            "x-amz-date:20261205T101500Z\n"
            "x-amz-security-token:tok+en/==\n"
            "x-amz-target:DynamoDB_20120810.BatchGetItem\n"
            "\n"
            "content-type;host;x-amz-date;x-amz-security-token;x-amz-target\n" +
                sha256_hex(body));
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20261205T101500Z\n"
            "20261205/eu-west-1/dynamodb/aws4_request\n" +
                sha256_hex(s.canonical_request));
  EXPECT_EQ(s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261205/eu-west-1/dynamodb/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, "
            "Signature=" +
                s.signature);

  // Any change to what is signed changes the signature: the body, a signed header, the day.
  RequestToSign other_body = request;
  const std::string body2 = body + " ";
  other_body.payload = body2;
  EXPECT_NE(sign_v4(other_body, credentials, "eu-west-1", "dynamodb", "20261205T101500Z").signature,
            s.signature);
  RequestToSign other_target = request;
  other_target.headers[2].second = "DynamoDB_20120810.PutItem";
  EXPECT_NE(
      sign_v4(other_target, credentials, "eu-west-1", "dynamodb", "20261205T101500Z").signature,
      s.signature);
  EXPECT_NE(sign_v4(request, credentials, "eu-west-1", "dynamodb", "20261206T101500Z").signature,
            s.signature);
}

// Only S3 signs the path as given; every other service signs it normalised.
TEST(SigV4, S3PathIsNotNormalised) {
  RequestToSign request;
  request.method = "GET";
  request.path = "//bucket/./a b//";
  request.headers = {{"host", "s3.amazonaws.com"}, {"x-amz-date", kAmzDate}};
  Credentials credentials{kAccessKeyId, kSecret, "", std::nullopt, "test"};
  EXPECT_TRUE(sign_v4(request, credentials, kRegion, "s3", kAmzDate)
                  .canonical_request.starts_with("GET\n//bucket/./a%20b//\n"));
  EXPECT_TRUE(sign_v4(request, credentials, kRegion, kService, kAmzDate)
                  .canonical_request.starts_with("GET\n/bucket/a%20b/\n"));
}

// The path is encoded once more by the signer: what AWS expects of a path already encoded on
// the wire (every service but S3).
TEST(SigV4, EncodedPathIsEncodedAgain) {
  RequestToSign request;
  request.method = "GET";
  request.path = "/a%20b/c+d";
  request.headers = {{"host", "example.amazonaws.com"}};
  Credentials credentials{kAccessKeyId, kSecret, "", std::nullopt, "test"};
  EXPECT_TRUE(sign_v4(request, credentials, kRegion, kService, kAmzDate)
                  .canonical_request.starts_with("GET\n/a%2520b/c%2Bd\n"));
}

TEST(SigV4, QueryEncodingIsCanonical) {
  RequestToSign request;
  request.method = "GET";
  request.query = "b=2&a=x%2fy&flag&a=1&sp=a b&bad=%zz";
  request.headers = {{"host", "example.amazonaws.com"}};
  Credentials credentials{kAccessKeyId, kSecret, "", std::nullopt, "test"};
  std::string creq = sign_v4(request, credentials, kRegion, kService, kAmzDate).canonical_request;
  // Sorted by name then value; '=' always present; hex upper-case; a stray '%' encoded.
  EXPECT_TRUE(creq.starts_with("GET\n/\na=1&a=x%2Fy&b=2&bad=%25zz&flag=&sp=a%20b\n")) << creq;
}

TEST(SigV4, AmzDate) {
  EXPECT_EQ(amz_date(1440938160), "20150830T123600Z");
  EXPECT_EQ(amz_date(0), "19700101T000000Z");
  EXPECT_EQ(amz_date(951868799), "20000229T235959Z");
}

TEST(SigV4, Sha256Hex) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace heartbeatd::transport::aws
