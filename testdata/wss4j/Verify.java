// Verify runs Apache WSS4J's DOM engine (WSSecurityEngine, the 1.6 API that
// Debian packages as libwss4j-java) over signed SOAP envelopes, as a strict
// receiver would: Basic Security Profile compliance on (WSS4J's default),
// signatures verified and their certificates trusted through a Merlin
// crypto holding only the given certificates, Timestamps checked strictly.
// One setting is relaxed: a UsernameToken without a Password (which the
// UsernameToken Profile allows, and which a caller's own Security header may
// carry) is reported as UT_NOPASSWORD instead of refused; WSS4J refuses it
// by default as a receiver policy, not a BSP rule. With BouncyCastle on the
// class path WSS4J registers it, and Santuario finds there the RSA-PSS
// signature algorithms (SHA256withRSAandMGF1, ...) that the JDK lacks.
//
//   java -cp CLASSPATH Verify [-cert PEM]... [-user NAME=PASSWORD]... FILE...
//
// For each FILE it prints one line:
//
//   OK FILE actions=TS,SIGN signed={ns}Body,{ns}Timestamp keyref=DIRECT_REF
//   FAIL FILE <WSS4J's message>
//
// and exits 0 only when WSS4J accepted every file.
import java.io.ByteArrayInputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import javax.security.auth.callback.Callback;
import javax.security.auth.callback.CallbackHandler;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.xml.parsers.DocumentBuilderFactory;

import org.apache.ws.security.WSConstants;
import org.apache.ws.security.WSDataRef;
import org.apache.ws.security.WSPasswordCallback;
import org.apache.ws.security.WSSConfig;
import org.apache.ws.security.WSSecurityEngine;
import org.apache.ws.security.WSSecurityEngineResult;
import org.apache.ws.security.components.crypto.Merlin;
import org.apache.ws.security.handler.RequestData;
import org.apache.ws.security.util.WSSecurityUtil;
import org.w3c.dom.Document;
import org.w3c.dom.Element;

public class Verify {
    public static void main(String[] args) throws Exception {
        List<X509Certificate> certs = new ArrayList<>();
        Map<String, String> passwords = new HashMap<>();
        List<String> files = new ArrayList<>();
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("-cert") && i + 1 < args.length) {
                try (InputStream in = new FileInputStream(args[++i])) {
                    for (java.security.cert.Certificate c : cf.generateCertificates(in)) {
                        certs.add((X509Certificate) c);
                    }
                }
            } else if (args[i].equals("-user") && i + 1 < args.length) {
                String[] up = args[++i].split("=", 2);
                passwords.put(up[0], up.length > 1 ? up[1] : "");
            } else {
                files.add(args[i]);
            }
        }
        if (files.isEmpty()) {
            System.err.println("usage: Verify [-cert PEM]... [-user NAME=PASSWORD]... FILE...");
            System.exit(2);
        }

        // The trust store holds exactly the given certificates: a signer is
        // trusted when its certificate is one of them or chains to one, and
        // references that do not carry the certificate (issuer-serial, SKI,
        // thumbprint) find it there.
        KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
        trust.load(null, null);
        for (int i = 0; i < certs.size(); i++) {
            trust.setCertificateEntry("cert" + i, certs.get(i));
        }
        Merlin crypto = new Merlin();
        crypto.setTrustStore(trust);

        CallbackHandler cb = (Callback[] callbacks) -> {
            for (Callback c : callbacks) {
                if (!(c instanceof WSPasswordCallback)) {
                    throw new UnsupportedCallbackException(c);
                }
                WSPasswordCallback pc = (WSPasswordCallback) c;
                String pw = passwords.get(pc.getIdentifier());
                if (pw != null) {
                    pc.setPassword(pw);
                }
            }
        };

        DocumentBuilderFactory dbf = DocumentBuilderFactory.newInstance();
        dbf.setNamespaceAware(true);
        dbf.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);

        boolean allOK = true;
        for (String file : files) {
            try {
                Document doc = dbf.newDocumentBuilder().parse(new ByteArrayInputStream(Files.readAllBytes(Paths.get(file))));
                System.out.println("OK " + file + " " + verify(doc, crypto, cb));
            } catch (Exception e) {
                allOK = false;
                String msg = String.valueOf(e.getMessage());
                for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
                    msg += " (cause: " + c + ")";
                }
                System.out.println("FAIL " + file + " " + e.getClass().getSimpleName() + ": " + msg.replaceAll("\\s+", " "));
            }
        }
        System.exit(allOK ? 0 : 1);
    }

    static String verify(Document doc, Merlin crypto, CallbackHandler cb) throws Exception {
        WSSConfig config = WSSConfig.getNewInstance();
        config.setWsiBSPCompliant(true);
        config.setTimeStampStrict(true);
        config.setAllowUsernameTokenNoPassword(true);
        RequestData data = new RequestData();
        data.setWssConfig(config);
        data.setSigCrypto(crypto);
        data.setCallbackHandler(cb);

        Element sec = WSSecurityUtil.getSecurityHeader(doc, null);
        if (sec == null) {
            throw new Exception("no wsse:Security header for the ultimate receiver");
        }
        WSSecurityEngine engine = new WSSecurityEngine();
        engine.setWssConfig(config);
        List<WSSecurityEngineResult> results = engine.processSecurityHeader(sec, data);
        if (results == null || results.isEmpty()) {
            throw new Exception("WSS4J processed nothing in the Security header");
        }

        List<String> actions = new ArrayList<>();
        List<String> signed = new ArrayList<>();
        String keyref = "-";
        // WSS4J returns the results last processed first.
        for (int i = results.size() - 1; i >= 0; i--) {
            WSSecurityEngineResult r = results.get(i);
            int action = (Integer) r.get(WSSecurityEngineResult.TAG_ACTION);
            switch (action) {
                case WSConstants.SIGN:
                    actions.add("SIGN");
                    @SuppressWarnings("unchecked")
                    List<WSDataRef> refs = (List<WSDataRef>) r.get(WSSecurityEngineResult.TAG_DATA_REF_URIS);
                    for (WSDataRef ref : refs) {
                        signed.add(ref.getName().toString());
                    }
                    Object rt = r.get(WSSecurityEngineResult.TAG_X509_REFERENCE_TYPE);
                    keyref = rt == null ? "-" : rt.toString();
                    break;
                case WSConstants.TS:
                    actions.add("TS");
                    break;
                case WSConstants.UT:
                    actions.add("UT");
                    break;
                case WSConstants.UT_NOPASSWORD:
                    actions.add("UT_NOPASSWORD");
                    break;
                case WSConstants.BST:
                    actions.add("BST");
                    break;
                case WSConstants.SC:
                    actions.add("SC");
                    break;
                default:
                    actions.add("action" + action);
            }
        }
        return "actions=" + String.join(",", actions) + " signed=" + String.join(",", signed) + " keyref=" + keyref;
    }
}
