/*
 * nGrinder 3.5 script: the seed's load test of GET /fish, with varied fish.
 *
 * Every run asks for one fish near one of the 49 training fish (jittered by up
 * to 5%), with k drawn from 1, 5, 15, 25, 49, and checks the answer: HTTP 200
 * and a species that is right for that k (see expected()). Every 10th run of
 * a thread also posts a batch of 100 fish to POST /predict, recorded as a
 * second test so the two are reported apart.
 *
 * Target: the test's "Parameter" field (System property "param"), e.g.
 *   http://127.0.0.1:8070   (fishpredict cluster up)
 *   http://127.0.0.1:70     (docker compose -f docker/compose.socket.yaml up)
 * README.md beside this file maps the seed's settings to nGrinder's.
 */
import static net.grinder.script.Grinder.grinder
import static org.hamcrest.Matchers.is
import static org.hamcrest.Matchers.isIn

import net.grinder.script.GTest
import net.grinder.scriptengine.groovy.junit.GrinderRunner
import net.grinder.scriptengine.groovy.junit.annotation.BeforeProcess
import net.grinder.scriptengine.groovy.junit.annotation.BeforeThread
import org.hamcrest.MatcherAssert
import org.junit.Test
import org.junit.runner.RunWith
import org.ngrinder.http.HTTPRequest
import org.ngrinder.http.HTTPRequestControl
import org.ngrinder.http.HTTPResponse

import groovy.json.JsonOutput
import groovy.json.JsonSlurper

@RunWith(GrinderRunner)
class TestRunner {

    // The seed's 49 fish: [length cm, weight g], 35 bream then 14 smelt.
    static final List<List<Double>> BREAM = [
        [25.4, 242.0], [26.3, 290.0], [26.5, 340.0], [29.0, 363.0], [29.0, 430.0],
        [29.7, 450.0], [29.7, 500.0], [30.0, 390.0], [30.0, 450.0], [30.7, 500.0],
        [31.0, 475.0], [31.0, 500.0], [31.5, 500.0], [32.0, 340.0], [32.0, 600.0],
        [32.0, 600.0], [33.0, 700.0], [33.0, 700.0], [33.5, 610.0], [33.5, 650.0],
        [34.0, 575.0], [34.0, 685.0], [34.5, 620.0], [35.0, 680.0], [35.0, 700.0],
        [35.0, 725.0], [35.0, 720.0], [36.0, 714.0], [36.0, 850.0], [37.0, 1000.0],
        [38.5, 920.0], [38.5, 955.0], [39.5, 925.0], [41.0, 975.0], [41.0, 950.0],
    ]
    static final List<List<Double>> SMELT = [
        [9.8, 6.7], [10.5, 7.5], [10.6, 7.0], [11.0, 9.7], [11.2, 9.8], [11.3, 8.7],
        [11.8, 10.0], [11.8, 9.9], [12.0, 9.8], [12.2, 12.2], [12.4, 13.4], [13.0, 12.2],
        [14.3, 19.7], [15.0, 19.9],
    ]
    static final List<Integer> KS = [1, 5, 15, 25, 49]
    static final Map<String, List<String>> NAMES = [bream: ["bream", "도미"], smelt: ["smelt", "빙어"]]
    static final double JITTER = 0.05
    static final int BATCH_ROWS = 100
    static final int BATCH_EVERY = 10

    public static GTest fishTest
    public static GTest batchTest
    public static HTTPRequest request
    public static String baseUrl

    Random rng

    @BeforeProcess
    static void beforeProcess() {
        HTTPRequestControl.setConnectionTimeout(10000)
        baseUrl = (System.getProperty("param") ?: "http://127.0.0.1:8070").replaceAll('/+$', '')
        fishTest = new GTest(1, "GET /fish")
        batchTest = new GTest(2, "POST /predict (batch of ${BATCH_ROWS})")
        request = new HTTPRequest()
        request.setHeaders(["Content-Type": "application/json"])
        grinder.logger.info("target {}", baseUrl)
    }

    @BeforeThread
    void beforeThread() {
        fishTest.record(this, "fish")
        batchTest.record(this, "batch")
        grinder.statistics.delayReports = true
        rng = new Random(grinder.processNumber * 100003L + grinder.threadNumber)
    }

    /** One fish near a training fish: [length, weight, species]. */
    List drawFish() {
        boolean bream = rng.nextDouble() < BREAM.size() / (double) (BREAM.size() + SMELT.size())
        List<Double> fish = bream ? BREAM[rng.nextInt(BREAM.size())] : SMELT[rng.nextInt(SMELT.size())]
        double scale = 1.0 + (rng.nextDouble() * 2.0 - 1.0) * JITTER
        return [Math.round(fish[0] * scale * 10) / 10.0, Math.round(fish[1] * scale * 10) / 10.0,
                bream ? "bream" : "smelt"]
    }

    /** k <= 5: the fish's species; k = 49: bream (the majority); k = 15, 25: either
     *  (near the class boundary a small bream may get "smelt": weight dominates). */
    static List<String> expected(String species, int k) {
        if (k == 49) {
            return NAMES.bream
        }
        return k <= 5 ? NAMES[species] : NAMES.bream + NAMES.smelt
    }

    void fish() {
        List f = drawFish()
        int k = KS[rng.nextInt(KS.size())]
        HTTPResponse response = request.GET("${baseUrl}/fish",
                [length: f[0].toString(), weight: f[1].toString(), k: k.toString()])
        MatcherAssert.assertThat(response.statusCode, is(200))
        def answer = new JsonSlurper().parseText(response.getBodyText())
        MatcherAssert.assertThat(answer.prediction as String, isIn(expected(f[2] as String, k)))
    }

    void batch() {
        List fishes = (1..BATCH_ROWS).collect { drawFish() }
        int k = KS[rng.nextInt(KS.size())]
        String body = JsonOutput.toJson([instances: fishes.collect { [it[0], it[1]] }])
        HTTPResponse response = request.POST("${baseUrl}/predict?k=${k}", body.getBytes("UTF-8"))
        MatcherAssert.assertThat(response.statusCode, is(200))
        List predictions = new JsonSlurper().parseText(response.getBodyText()).predictions as List
        MatcherAssert.assertThat(predictions.size(), is(BATCH_ROWS))
        predictions.eachWithIndex { p, i ->
            MatcherAssert.assertThat(p as String, isIn(expected(fishes[i][2] as String, k)))
        }
    }

    @Test
    void test() {
        fish()
        if (grinder.runNumber % BATCH_EVERY == BATCH_EVERY - 1) {
            batch()
        }
    }
}
