/* The Thrift framed transport as a KCM parser program: a 4-byte big-endian length that
 * excludes itself. `kcm bench --contenders kcm-bpf` runs the object clang builds from it:
 *   clang -O2 -g0 -target bpf -c thrift.c -o thrift.o
 * (thrift-object.ts holds its bytes; a test checks that they match this source). */

/* LD_ABS: a big-endian word at an offset of the message; past its end the program ends returning 0. */
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

__attribute__((section("socket_kcm"), used))
int thrift_parser(void *skb)
{
	return load_word(skb, 0) + 4;
}

char _license[] __attribute__((section("license"), used)) = "MIT";
