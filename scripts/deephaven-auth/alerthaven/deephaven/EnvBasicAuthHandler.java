// HTTP basic authentication for the local Deephaven server with one user name
// and password taken from the environment (DEEPHAVEN_BASIC_USER,
// DEEPHAVEN_BASIC_PASSWORD), so that the client's basic-auth login can be
// tested against a real server without the SQL database Deephaven's own basic
// handler needs. The credentials travel by environment rather than JVM
// arguments or system properties, which anyone can read with `jcmd`, and
// never get logged.
//
// Selected with -DAuthHandlers=alerthaven.deephaven.EnvBasicAuthHandler:
// Deephaven (AuthContextModule, 42.7) instantiates the class with its no-arg
// constructor and, because it implements BasicAuthMarshaller.Handler, wraps it
// in a BasicAuthMarshaller, which decodes `authorization: Basic base64(u:p)`
// and calls login(u, p). Compiled by scripts/deephaven_server.py.
package alerthaven.deephaven;

import io.deephaven.auth.AuthContext;
import io.deephaven.auth.BasicAuthMarshaller;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Optional;

public final class EnvBasicAuthHandler implements BasicAuthMarshaller.Handler {
    private static final String USER_ENV = "DEEPHAVEN_BASIC_USER";
    private static final String PASSWORD_ENV = "DEEPHAVEN_BASIC_PASSWORD";

    private final byte[] user;
    private final byte[] password;

    public EnvBasicAuthHandler() {
        user = required(USER_ENV);
        password = required(PASSWORD_ENV);
    }

    // Fails the server's start-up rather than accepting an empty password.
    private static byte[] required(String name) {
        String value = System.getenv(name);
        if (value == null || value.isEmpty()) {
            throw new IllegalStateException(name + " is not set: " + EnvBasicAuthHandler.class.getName()
                    + " needs a user name and a password");
        }
        return value.getBytes(StandardCharsets.UTF_8);
    }

    // An empty result is a refused login: the client sees UNAUTHENTICATED.
    @Override
    public Optional<AuthContext> login(String username, String password) {
        // Constant-time comparisons, both evaluated (`&`, not `&&`): a wrong
        // user name takes as long to refuse as a wrong password.
        boolean accepted = MessageDigest.isEqual(user, username.getBytes(StandardCharsets.UTF_8))
                & MessageDigest.isEqual(this.password, password.getBytes(StandardCharsets.UTF_8));
        return accepted ? Optional.of(new AuthContext.SuperUser()) : Optional.empty();
    }
}
