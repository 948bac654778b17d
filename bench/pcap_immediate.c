/* pcap_immediate.so: LD_PRELOAD shim for vde_pcapplug (bench/run.sh).
 *
 * vde_pcapplug opens its capture with pcap_open_live(dev, 2048, 1, 0, ...).
 * With libpcap 1.10 on Linux 6.x a zero timeout gives a TPACKET_V3 ring
 * whose blocks are handed over only when full: here not a single captured
 * frame ever reached the switch, so nothing from the outside host got in.
 * This pcap_open_live does what the original does plus immediate mode
 * (every frame handed over as it arrives), which is what a plug needs.
 * Nothing else of vde_pcapplug changes.
 */
#include <stddef.h>

typedef struct pcap pcap_t;
pcap_t* pcap_create(const char* device, char* errbuf);
int pcap_set_snaplen(pcap_t* p, int snaplen);
int pcap_set_promisc(pcap_t* p, int promisc);
int pcap_set_timeout(pcap_t* p, int to_ms);
int pcap_set_immediate_mode(pcap_t* p, int on);
int pcap_activate(pcap_t* p);
void pcap_close(pcap_t* p);

pcap_t* pcap_open_live(const char* device, int snaplen, int promisc, int to_ms, char* errbuf) {
  pcap_t* p = pcap_create(device, errbuf);
  if (p == NULL) return NULL;
  if (pcap_set_snaplen(p, snaplen) != 0 || pcap_set_promisc(p, promisc) != 0 ||
      pcap_set_timeout(p, to_ms) != 0 || pcap_set_immediate_mode(p, 1) != 0 ||
      pcap_activate(p) < 0) {
    pcap_close(p);
    return NULL;
  }
  return p;
}
