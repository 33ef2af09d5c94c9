import Foundation
import UDRCore

/// An access key pair (and session token) for S3. Taken from the standard
/// AWS places when it is needed, never stored in a repository.
public struct S3Credentials: Sendable, Hashable {
    public let accessKeyID: String
    public let secretAccessKey: String
    public let sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// The credentials the AWS tools would use: `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` (with `AWS_SESSION_TOKEN`), else the profile
    /// `profile` (or `AWS_PROFILE`, or `default`) of the shared credentials
    /// file (`AWS_SHARED_CREDENTIALS_FILE`, or `~/.aws/credentials`).
    public static func resolve(profile: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) throws(UDRError)
        -> S3Credentials
    {
        if profile == nil, let key = environment["AWS_ACCESS_KEY_ID"], !key.isEmpty {
            guard let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty else {
                throw UDRError(.credentials, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set both, or neither to use ~/.aws/credentials")
            }
            let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            return S3Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: token)
        }
        let name = profile ?? environment["AWS_PROFILE"].flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        let file = environment["AWS_SHARED_CREDENTIALS_FILE"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (environment["HOME"] ?? NSHomeDirectory()) + "/.aws/credentials"
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw UDRError(
                .credentials,
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write a [\(name)] profile to \(file)")
        }
        let section = Self.profiles(text)[name] ?? [:]
        guard let key = section["aws_access_key_id"], let secret = section["aws_secret_access_key"] else {
            throw UDRError(
                .credentials, "\(file) has no profile [\(name)] with aws_access_key_id and aws_secret_access_key; add one or set AWS_ACCESS_KEY_ID")
        }
        return S3Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: section["aws_session_token"])
    }

    /// The region the AWS tools would use: `AWS_REGION`, `AWS_DEFAULT_REGION`,
    /// or the profile's `region` in `AWS_CONFIG_FILE` (`~/.aws/config`).
    public static func region(profile: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        for name in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
            if let region = environment[name], !region.isEmpty { return region }
        }
        let name = profile ?? environment["AWS_PROFILE"].flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        let file = environment["AWS_CONFIG_FILE"] ?? (environment["HOME"] ?? NSHomeDirectory()) + "/.aws/config"
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        let profiles = Self.profiles(text)
        return (profiles["profile \(name)"] ?? profiles[name])?["region"]
    }

    /// The sections of an INI file (`[name]`, `key = value`, `#` and `;` comments).
    static func profiles(_ text: String) -> [String: [String: String]] {
        var out: [String: [String: String]] = [:]
        var current: String?
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                current = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                continue
            }
            guard let current, let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            out[current, default: [:]][key] = value
        }
        return out
    }
}
