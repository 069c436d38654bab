// bench/inject_load.go: the client of bench/inject.sh, an open-loop load of
// AdmissionReviews sent as the Kubernetes API server sends them: Go's
// net/http over TLS, HTTP/2 by ALPN when the webhook offers it (one
// connection, a stream per review), else (or with -http1) HTTP/1.1
// keep-alive connections, a new one whenever all are busy.
//
// Review i is due at start + i/rate whatever became of the earlier ones (a
// late answer does not delay the schedule, and counts from when its review
// was due); every answer is checked (HTTP 200, allowed, a patch). Prints one
// JSON line: the count, bad answers, the protocol, and p50/p99/max in ms.
//
//	go run bench/inject_load.go -url https://127.0.0.1:PORT/mutate -ca ca.crt \
//	    -review review.json -rate 200 -duration 20
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "the webhook's /mutate URL")
	caFile := flag.String("ca", "", "the CA of its certificate, PEM")
	reviewFile := flag.String("review", "", "the AdmissionReview to send")
	rate := flag.Float64("rate", 200, "reviews per second")
	duration := flag.Float64("duration", 20, "seconds of load, after a warm-up second")
	http1 := flag.Bool("http1", false, "HTTP/1.1 only, as an API server with HTTP/2 off")
	flag.Parse()

	pem, err := os.ReadFile(*caFile)
	check(err)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		check(fmt.Errorf("no certificate in %s", *caFile))
	}
	review, err := os.ReadFile(*reviewFile)
	check(err)
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2:   !*http1,
		MaxIdleConnsPerHost: 1000,
	}
	if *http1 {
		transport.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: transport}

	var mu sync.Mutex
	var times []time.Duration
	var bad []string
	proto := ""
	send := func(due time.Time, counted bool) {
		answer, status, p, err := post(client, *url, review)
		took := time.Since(due)
		mu.Lock()
		defer mu.Unlock()
		if p != "" {
			proto = p
		}
		switch {
		case err != nil:
			bad = append(bad, err.Error())
		case status != 200 || !answer.Response.Allowed || answer.Response.Patch == "":
			bad = append(bad, fmt.Sprintf("%d allowed=%v", status, answer.Response.Allowed))
		case counted:
			times = append(times, took)
		}
	}

	warm := int(*rate)
	total := warm + int(*rate**duration)
	start := time.Now().Add(100 * time.Millisecond)
	var wg sync.WaitGroup
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(float64(i) / *rate * float64(time.Second)))
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func(counted bool) {
			defer wg.Done()
			send(due, counted)
		}(i >= warm)
	}
	wg.Wait()

	sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
	pct := func(p float64) float64 {
		if len(times) == 0 {
			return 0
		}
		i := int(p * float64(len(times)))
		if i >= len(times) {
			i = len(times) - 1
		}
		return float64(times[i].Microseconds()) / 1000
	}
	first := ""
	if len(bad) > 0 {
		first = bad[0]
	}
	out, _ := json.Marshal(map[string]any{
		"requests": len(times), "bad": len(bad), "first_bad": first, "proto": proto,
		"p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1),
	})
	fmt.Println(string(out))
}

type reviewAnswer struct {
	Response struct {
		Allowed bool   `json:"allowed"`
		Patch   string `json:"patch"`
	} `json:"response"`
}

// post sends one review and reads its whole answer.
func post(client *http.Client, url string, review []byte) (reviewAnswer, int, string, error) {
	var answer reviewAnswer
	r, err := client.Post(url, "application/json", bytes.NewReader(review))
	if err != nil {
		return answer, 0, "", err
	}
	defer r.Body.Close()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return answer, r.StatusCode, r.Proto, err
	}
	return answer, r.StatusCode, r.Proto, json.Unmarshal(body, &answer)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "inject_load:", err)
		os.Exit(1)
	}
}
